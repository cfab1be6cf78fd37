"""HTTP views (Faust web, aiohttp): they only read tables."""
