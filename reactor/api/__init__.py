"""The local HTTP APIs (pause/resume, maintenance records) behind one bearer-token guard."""
