"""The page (gradio only): its layout and events (`layout`), the chat turn (`chat`), the
JSON API gradio_client calls (`api`), safe HTML of answers (`render`) and the Markdown
export (`export`). What the page does is `web.service.NewsApp`'s; here is how it shows."""
