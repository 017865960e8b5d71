"""The space-ground link: contacts and rates (pure physics), CCSDS packets (the edge, with
`spacepackets`), the on-board store's downlink, the lossy channel and the ground archive."""
