"""What is beneath: offline naming of any latitude/longitude (country, sea, broad area)."""
