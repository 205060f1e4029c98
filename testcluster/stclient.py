"""A Streamlit session without a browser: Streamlit's own wire protocol over its
websocket (`/_stcore/stream`, protobuf BackMsg / ForwardMsg from the streamlit
package), with any request headers.

What a browser would be sent is what this client records: every text of every
element (markdown, headings, alerts, metrics, table cells decoded from Arrow,
widget labels and options, download links), the pages in the navigation and
whether the script finished or raised. Used by the access-control tests (through
nginx, with forged headers, past the proxy) and by the load script (many sessions
at once, cheaper than as many Chromiums).
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field

from google.protobuf.message import Message
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


@dataclass
class Run:
    """What one script run sent."""

    texts: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)      # url paths in the navigation
    downloads: list[str] = field(default_factory=list)  # /media/... URLs
    exceptions: list[str] = field(default_factory=list)
    finished: str = ""                                  # script_finished status, or ""
    page_not_found: bool = False
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def _walk(msg: Message, run: Run) -> None:
    for desc, value in msg.ListFields():
        items = value if desc.label == desc.LABEL_REPEATED else [value]
        for item in items:
            if isinstance(item, Message):
                _walk(item, run)
            elif isinstance(item, str):
                run.texts.append(item)
            elif isinstance(item, bytes) and desc.name == "data":
                run.texts.extend(_arrow_cells(item))


def _arrow_cells(data: bytes) -> list[str]:
    import pyarrow as pa
    try:
        table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
    except pa.ArrowInvalid:
        return []
    cells = list(table.column_names)
    for column in table.columns:
        cells.extend(str(v) for v in column.to_pylist())
    return cells


class Session:
    """One websocket session; `run()` asks for a page and waits for the script to end."""

    def __init__(self, url: str, headers: dict[str, str] | None = None):
        self.url = url.rstrip("/")
        self.ws_url = self.url.replace("http", "ws", 1) + "/_stcore/stream"
        self.headers = dict(headers or {})
        self.conn = None

    async def __aenter__(self) -> Session:
        request = HTTPRequest(self.ws_url, connect_timeout=30, headers=dict(
            self.headers, **{"Sec-WebSocket-Protocol": "streamlit"}))
        self.conn = await websocket_connect(request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()

    async def fetch(self, path: str) -> tuple[int, bytes]:
        """GET a path (a download's /media/... URL) with this session's headers, while
        the session is open (Streamlit forgets a session's files when it ends)."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError
        try:
            reply = await AsyncHTTPClient().fetch(self.url + path, headers=self.headers,
                                                  request_timeout=60)
            return reply.code, reply.body
        except HTTPClientError as exc:
            return exc.code, b""

    async def run(self, page: str = "", query: str = "", timeout_s: float = 120) -> Run:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        await self.conn.write_message(msg.SerializeToString(), binary=True)
        out, started = Run(), time.perf_counter()
        deadline = started + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"page {page or '(default)'} did not finish in {timeout_s} s")
            raw = await asyncio.wait_for(self.conn.read_message(), left)
            if raw is None:
                raise ConnectionError(f"the server closed the session ({page or 'default'})")
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                element = fwd.delta.new_element
                which = element.WhichOneof("type")
                if which == "exception":
                    out.exceptions.append(f"{element.exception.type}: "
                                          f"{element.exception.message}")
                elif which == "download_button":
                    out.downloads.append(element.download_button.url)
                _walk(element, out)
            elif kind == "navigation":
                out.pages = [p.url_pathname for p in fwd.navigation.app_pages]
            elif kind == "page_not_found":
                out.page_not_found = True
            elif kind == "script_finished":
                out.finished = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                out.seconds = time.perf_counter() - started
                return out


def visit(url: str, page: str = "", query: str = "", headers: dict[str, str] | None = None,
          timeout_s: float = 120) -> Run:
    """One page in a new session (blocking)."""
    async def go() -> Run:
        async with Session(url, headers) as session:
            return await session.run(page, query, timeout_s)
    return asyncio.run(go())
