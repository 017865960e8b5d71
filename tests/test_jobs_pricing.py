import json
import math

import pytest

from skyrack.jobs.pricing import account, usd_per_gpu_hour


def test_price_per_gpu_hour_is_the_planners_for_the_profile_orbit(cli):
    # The same figure `skyrack plan --orbit starcloud-1` prints: one path from profile to price.
    result = cli("plan", "--orbit", "starcloud-1", "--no-report", "--json")
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)["orbit"]["usd_per_gpu_hour"]
    price = usd_per_gpu_hour("starcloud-1")
    assert price == pytest.approx(planned, rel=1e-9)
    assert 0 < price < 1000
    # Another orbit has other sunlight, so another price (the twin measures it).
    assert usd_per_gpu_hour("suncatcher") != pytest.approx(price, rel=1e-6)


def test_account_of_a_job():
    bill = account(gpu_s=1800.0, gpu_w=300.0, usd_per_gpu_hour=4.0, tokens=1000)
    assert bill == pytest.approx(
        {"energy_wh": 150.0, "gpu_s": 1800.0, "gpu_hours": 0.5, "price_usd": 2.0, "joules_per_token": 540.0}
    )
    assert "joules_per_token" not in account(10.0, 300.0, 4.0)  # not a token workload
    assert account(10.0, 300.0, 4.0, tokens=0)["joules_per_token"] is None
    assert account(0.0, 0.0, 4.0) == {"energy_wh": 0.0, "gpu_s": 0.0, "gpu_hours": 0.0, "price_usd": 0.0}


@pytest.mark.parametrize(
    "args",
    [
        (-1.0, 300.0, 4.0, None),
        (1.0, math.nan, 4.0, None),
        (1.0, 300.0, math.inf, None),
        (1.0, 300.0, 4.0, -3),
    ],
)
def test_account_refuses_impossible_figures(args):
    with pytest.raises(ValueError):
        account(*args)
