"""What the test modules share, by kind: `servers` (ports, child processes, `chroma run`,
quiet HTTP servers), `fakes` (stand-ins for models and endpoints), `documents` (our own
sample texts and PDFs), and the scripts the fixtures start (`llm_server.py`,
`dying_llm_server.py`) and Open WebUI's prompt templates (`openwebui_prompts.py`)."""
