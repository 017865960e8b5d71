"""The ground segment: a server over a mission's telemetry archive (REST, a resumable live
stream, authenticated commands, the assistant) and the web dashboard it serves."""
