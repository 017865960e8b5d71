"""End to end in headless Chromium over the realistic link: the page shows the contact state,
goes silent between passes and catches up in each; a command and a question sent in the silence
are carried up in the next contact. (Its own module: one Playwright instance per module.)"""

from __future__ import annotations
