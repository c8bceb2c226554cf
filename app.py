"""The web UI. For now: the library and a passage search over it (the chat comes next)."""

from __future__ import annotations

import html

import gradio as gr

from rag.settings import get_settings
from rag.store import ArticleStore, StoreError

settings = get_settings()


def _store() -> ArticleStore:
    return ArticleStore(settings)


def library_rows() -> list[list[str | int]]:
    return [
        [a.title, a.published.isoformat() if a.published else "", a.outlet or "", a.chunks, a.id]
        for a in _store().list_articles()
    ]


def search(query: str, k: float) -> str:
    """Top passages by meaning, each with its article and span: shows what the store holds."""
    query = (query or "").strip()
    if not query:
        return "Type a question or some words to search the passages."
    try:
        store = _store()
        if not store.exists or store.chunks.count() == 0:
            return html.escape(store.empty_message())
        vector = store.embed_model.get_query_embedding(query)
        hits = store.chunks.query(query_embeddings=[vector], n_results=int(k),
                                  include=["documents", "metadatas", "distances"])
    except StoreError as exc:
        return html.escape(str(exc))
    parts = []
    for text, meta, dist in zip(hits["documents"][0], hits["metadatas"][0], hits["distances"][0],
                                strict=True):
        where = meta.get("url") or meta.get("path") or ""
        parts.append(
            f"**{html.escape(meta.get('title', ''))}** ({html.escape(meta.get('published', ''))})"
            f" · similarity {1 - dist:.2f} · chars {meta['start']}–{meta['end']}\n\n"
            f"> {html.escape(text)}\n\n<small>{html.escape(where)}</small>"
        )
    return "\n\n---\n\n".join(parts)


def build() -> gr.Blocks:
    with gr.Blocks(title="News RAG") as demo:
        gr.Markdown("# News RAG\nAsk questions of your news articles. Add articles with "
                    "`python -m ingest PATH-OR-URL`.")
        with gr.Tab("Search"):
            query = gr.Textbox(label="Search passages", placeholder="why did relations sour?")
            k = gr.Slider(1, 20, value=5, step=1, label="passages")
            out = gr.Markdown()
            query.submit(search, [query, k], out)
            gr.Button("Search").click(search, [query, k], out)
        with gr.Tab("Library"):
            table = gr.Dataframe(headers=["title", "published", "outlet", "chunks", "id"],
                                 value=library_rows, interactive=False)
            gr.Button("Refresh").click(library_rows, None, table)
    return demo


if __name__ == "__main__":
    build().launch(server_name=settings.host, server_port=settings.port)
