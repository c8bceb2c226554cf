"""The OpenAI-compatible API on the app's server: the routes, their bounds and login
(`api`), OpenAI's request and response shapes with every parameter honoured, refused or
ignored for a stated reason (`completions`), and Open WebUI's task prompts answered from
the conversation (`openwebui`)."""
