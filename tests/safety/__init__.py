"""The safety corpus (cases.jsonl) and a fake OpenAI-compatible server shared by the ai tests."""
