"""The OpenAI-compatible API on the app's server: the routes, their bounds and login
(`api`), answers run off the event loop in lanes shared with MCP (`lanes`), OpenAI's
request with every parameter honoured, refused or ignored for a stated reason
(`params`), the answer in OpenAI's shapes (`completions`) cut at `stop` or
`max_tokens` (`cut`), and Open WebUI's task prompts answered from the conversation
(`openwebui`)."""
