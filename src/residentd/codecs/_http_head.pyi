# Types of the C module _http_head.c: the same function as http.py's read_head_py.

def read_head(
    head: bytes, max_request_line: int, max_headers: int, /
) -> tuple[str, str, str, dict[str, str]] | None: ...
