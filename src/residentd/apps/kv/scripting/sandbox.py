"""The Lua interpreter scripts run in: lupa's Lua 5.1 (the version Redis embeds), made Redis's.

``SETUP`` runs once in a fresh runtime and makes the environment scripts run in (lupa keeps
the real globals, ``debug`` among them, for itself), holding what Redis 7.0 leaves: the base
library without ``print``, ``dofile``, ``loadfile``, ``require``, ``module``, ``getfenv``,
``setfenv`` and ``newproxy``; ``string``, ``table``, ``math``, ``coroutine``; ``redis``,
``cjson`` and ``bit``; and neither ``io``, ``os``, ``debug``, ``package`` nor lupa's
``python``. ``loadstring`` and ``load`` refuse precompiled bytecode (a known way out of a
Lua 5.1 sandbox). That environment and the libraries in it are read-only, as in Redis 7.0:
assigning a global or a library's field fails with "Attempt to modify a readonly table",
reading a global that does not exist with "Script attempted to access nonexistent global
variable". Python objects reach Lua only as the functions given to ``SETUP``, and no
attribute of one can be read from Lua (``attribute_filter``).

``debug`` is used by two closures of ``SETUP`` only: the count hook, which calls the
engine's ``tick`` every ``HOOK_INSTRUCTIONS`` instructions (Redis's ``luaMaskCountHook``: the
busy threshold and SCRIPT KILL), and the error handler a script runs under (Redis's
``__redis__err__handler``), which turns an error into the table ``{err=..., source=...,
line=...}`` the engine writes as "-ERR ... script: <sha>, on @user_script:<line>.".

One difference remains: ``rawset``, ``setmetatable``, ``getmetatable``, ``next``, ``pairs``,
``rawget``, ``load`` and ``loadstring`` are Lua functions here, so an error one of them raises
from a tail call (``return rawset(_G, 'x', 1)``) cannot name the script's line, which Lua 5.1
drops from the stack for a tail call: it reads "on =(tail call):-1." where Redis, whose are C
functions, says "on @user_script:1.".

A Python function called from Lua that raises makes a Lua error whose value is the Python
exception; ``ScriptError`` is the one the engine raises on purpose (``redis.call`` failing,
a bad argument), and the error handler and ``pcall`` turn it back into its ``{err=...}``
table (``pcall`` its text), so a script sees what a Redis 7.0 script sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lupa.lua51 as lupa

from residentd.errors import ResidentdError

HOOK_INSTRUCTIONS = 100_000  # Redis's LUA_MASKCOUNT period

SETUP = r"""
local py = ...
local dbg, raw_pcall, raw_rawset, raw_loadstring = debug, pcall, rawset, loadstring
local raw_setmetatable, raw_setfenv, unwrap = setmetatable, setfenv, py.unwrap
local error_text = py.error_text

-- Scripts run in an environment of their own (lupa keeps the real globals for itself).
local env = {}
for _, name in ipairs({'assert', 'collectgarbage', 'coroutine', 'error', 'gcinfo',
                       'getmetatable', 'ipairs', 'math', 'next', 'pairs', 'rawequal',
                       'rawget', 'select', 'string', 'table', 'tonumber', 'tostring', 'type',
                       'unpack', 'xpcall', '_VERSION'}) do
  env[name] = _G[name]
end
env._G = env

-- Redis 7.0's pcall (luaRedisPcall): an error that is a table with a string (or number)
-- `err` gives that field, not the table.
local function unwrapped(ok, ...)
  if ok then return ok, ... end
  local err = error_text((...))
  if type(err) == 'table' then
    local text = err.err
    if type(text) == 'string' or type(text) == 'number' then return false, text end
  end
  return false, err
end
env.pcall = function(f, ...) return unwrapped(raw_pcall(f, ...)) end

-- Lua 5.1's luaO_chunkid: how an error names a chunk.
local function chunk_id(source)
  source = source:match('^[^%z]*')  -- a C string: up to a NUL
  local first = source:sub(1, 1)
  if first == '=' then return source:sub(2, 60) end
  if first == '@' then
    source = source:sub(2)
    if #source > 52 then return '...' .. source:sub(-52) end
    return source
  end
  local line = source:match('^[^\n\r]*'):sub(1, 42)
  if #line < #source then return '[string "' .. line .. '..."]' end
  return '[string "' .. line .. '"]'
end

-- Precompiled chunks are refused as Redis refuses them: read as source, they fail at once.
local function compile(chunk, name)
  if type(chunk) == 'string' and chunk:byte(1) == 27 then
    return nil, chunk_id(name or chunk) .. ":1: unexpected symbol near 'char(27)'"
  end
  local fn, message = raw_loadstring(chunk, name)
  if fn then raw_setfenv(fn, env) end
  return fn, message
end
env.loadstring = compile
env.load = function(reader, name)
  if type(reader) ~= 'function' then
    error("bad argument #1 to 'load' (function expected, got " .. type(reader) .. ')', 2)
  end
  local parts = {}
  while true do
    local part = reader()
    if part == nil or part == '' then break end
    if type(part) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = part
  end
  return compile(table.concat(parts), name or '=(load)')
end

local redis = {}
for name, fn in pairs(py.redis) do redis[name] = fn end
-- Python's own callables, C functions to Lua: a script's `return redis.call(...)` keeps its
-- frame, so an error still names the script's line.
redis.call, redis.pcall = py.call, py.pcall
local function bad_arguments() return {err = 'ERR wrong number or type of arguments'} end
-- luaPushErrorBuff: "-CODE message" keeps its code, a message of one word gets ERR's; the
-- message loses the CR and LF at its ends.
redis.error_reply = function(...)
  local message = ...
  if select('#', ...) ~= 1 or type(message) ~= 'string' then return bad_arguments() end
  if message:sub(1, 1) == '-' then message = message:sub(2) end
  local code, text = message:match('^([^ ]*) (.*)$')
  if code == nil then code, text = 'ERR', message end
  return {err = code .. ' ' .. text:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')}
end
redis.status_reply = function(message)
  if type(message) ~= 'string' then return bad_arguments() end
  return {ok = message}
end
redis.REDIS_VERSION = '7.0.15'
redis.REDIS_VERSION_NUM = 0x0007000f
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL =
  0, 1, 2, 2, 3
env.redis = redis
local cjson = {}
for name, fn in pairs(py.cjson) do cjson[name] = fn end
cjson.null = py.null
env.cjson = cjson
local bit = {}
for name, fn in pairs(py.bit) do bit[name] = fn end
env.bit = bit

-- The libraries are read-only too: each is a proxy of the real table, which `next`, `pairs`,
-- `rawget` and `getmetatable` see through, so a script cannot change what the next one runs.
local originals = {}  -- proxy -> the library table it stands for
local function refuse() error('Attempt to modify a readonly table', 2) end
local function protect(t)
  local proxy = raw_setmetatable({}, {__index = t, __newindex = refuse})
  originals[proxy] = t
  return proxy
end
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'redis', 'cjson', 'bit'}) do
  env[name] = protect(env[name])
end
local string_meta = getmetatable('')
string_meta.__index = env.string
local string_meta_proxy = protect(string_meta)
local raw_next, raw_rawget, raw_getmetatable = next, rawget, getmetatable
local function real(t) return originals[t] or t end
env.next = function(t, k) return raw_next(real(t), k) end
env.pairs = function(t) return env.next, t, nil end
env.rawget = function(t, k) return raw_rawget(real(t), k) end
env.getmetatable = function(v)
  if v == env or originals[v] then return nil end
  local meta = raw_getmetatable(v)
  if meta == string_meta then return string_meta_proxy end
  return meta
end
local function readonly() error('Attempt to modify a readonly table', 0) end
env.rawset = function(t, k, v)
  if t == env or originals[t] then readonly() end
  return raw_rawset(t, k, v)
end
env.setmetatable = function(t, m)
  if t == env or originals[t] then readonly() end
  return raw_setmetatable(t, m)
end

raw_setmetatable(env, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

local tick = py.tick
dbg.sethook(function() tick() end, '', py.every)

local here = dbg.getinfo(1, 'S').source  -- this chunk's frames (the metamethods) are skipped
local function handler(err)
  err = unwrap(err)
  local level = 2
  local info = dbg.getinfo(level, 'nSl')
  while info and (info.what == 'C' or info.source == here) do
    level = level + 1
    info = dbg.getinfo(level, 'nSl')
  end
  if type(err) == 'table' and err.where then  -- a library's error: where, as luaL_error says
    local where = ''
    if info and info.currentline >= 0 then
      where = info.short_src .. ':' .. info.currentline .. ': '
    end
    err = {err = 'ERR ' .. where .. err.where}
  end
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if info then
    err.source = info.source
    err.line = info.currentline
  end
  return err
end

local function first(ok, value) return ok, value end  -- a script's reply is its first value

local function run(fn, keys, argv)
  raw_rawset(env, 'KEYS', keys)
  raw_rawset(env, 'ARGV', argv)
  return first(xpcall(fn, handler))
end

return run, function(body) return compile(body, '@user_script') end
"""


class ScriptError(ResidentdError):
    """Raised by a Python function called from a script: the script sees the Lua error
    ``{err = text}`` (``text`` is an error reply without its "-")."""

    def __init__(self, text: bytes, before_call: bool = False) -> None:
        super().__init__(text)
        self.text = text
        # Refused before the command was looked up (no arguments, an argument of a wrong
        # type): Redis's error table for pcall then lacks ``ignore_error_stats_update``.
        self.before_call = before_call


class _Null:
    """``cjson.null``: lua-cjson's is a light userdata, and a Python object is a userdata in
    Lua too (one and the same each time it goes in, so ``x == cjson.null`` holds)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "userdata: (nil)"


NULL = _Null()


class LibraryError(ScriptError):
    """Raised by a library function (cjson, bit) as Lua's ``luaL_error`` raises: the script's
    error reads "ERR user_script:<line>: <text>", and ``pcall`` gets the bare text."""


def _error_text(error: object) -> object:
    """What ``pcall`` returns for an error: a ``ScriptError``'s text, as Redis 7.0 gives."""
    return error.text if isinstance(error, ScriptError) else error


def _no_attributes(obj: object, name: object, setting: bool) -> object:
    raise AttributeError("Python objects are not reachable from scripts")


class Sandbox:
    """One Lua runtime set up as Redis's; ``compile`` and ``run`` are all the engine uses."""

    def __init__(
        self,
        call: Callable[..., Any],
        pcall: Callable[..., Any],
        tick: Callable[[], None],
        redis: dict[str, Callable[..., Any]],
        libraries: Callable[[Sandbox], dict[str, dict[str, Callable[..., Any]]]],
    ) -> None:
        self.lua = lupa.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_no_attributes,
        )
        self.null = NULL

        def table(functions: dict[str, Any]) -> Any:
            return self.lua.table_from({name.encode(): value for name, value in functions.items()})

        lib_tables = {name: table(functions) for name, functions in libraries(self).items()}
        py = table(
            {
                "unwrap": self._unwrap,
                "error_text": _error_text,
                "call": call,
                "pcall": pcall,
                "tick": tick,
                "every": HOOK_INSTRUCTIONS,
                "null": self.null,
                "redis": table(redis),
                **lib_tables,
            }
        )
        self._run, self._compile = self.lua.execute(SETUP, py)

    def _unwrap(self, error: object) -> object:
        if isinstance(error, LibraryError):
            return self.lua.table_from({b"where": error.text})
        if isinstance(error, ScriptError):
            return self.lua.table_from({b"err": error.text})
        return error

    def compile(self, body: bytes) -> Any:
        """The script as a Lua function; ``ScriptError`` with the compiler's message if it
        does not compile."""
        function, message = self._compile(body)
        if function is None:
            raise ScriptError(message)
        return function

    def run(self, function: Any, keys: list[bytes], argv: list[bytes]) -> tuple[bool, Any]:
        """Run a compiled script with its KEYS and ARGV: (True, what it returned) or (False,
        its error table)."""
        table = self.lua.table_from
        ok, value = self._run(function, table(keys), table(argv))
        return bool(ok), value

    def table(self, items: Any = ()) -> Any:
        return self.lua.table_from(items)

    def table_of(self, mapping: dict[bytes, Any]) -> Any:
        return self.lua.table_from(mapping)
