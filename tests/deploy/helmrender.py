"""A small renderer for the subset of Helm's Go templates that deploy/helm/bedside uses.

Used by check.py when `helm` is not installed (it is not packaged by Debian). It is strict where
Helm is lenient: a `.Values` path that does not exist in the values is an error (so a typo in a
template fails CI), and an unsupported construct is an error rather than silently ignored.

Supported: text with {{ }} actions and the {{- -}} trim markers, {{/* comments */}},
define / include, if / else if / else / end, pipelines with |, parenthesised sub-expressions,
string and number literals, true/false, fields of . (.Values, .Release, .Chart), and the
functions default, printf, trunc, trimSuffix, quote, indent, nindent, toYaml, toJson,
sha256sum, and, or, not, eq, ne, ternary, join. `range`, `with`, variables and `tpl` are not
supported (the chart avoids them).
"""

import hashlib
import json
import re

import yaml


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokenize_template(text, name):
    """Split into ('text', s) and ('action', s) items, applying the trim markers."""
    items = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip(" \t\r\n")
        items.append(["text", chunk])
        body = m.group(2).strip()
        items.append(["action", body, bool(m.group(3))])
        pos = m.end()
    items.append(["text", text[pos:]])
    # A right trim marker trims the whitespace at the start of the following text.
    for i, it in enumerate(items):
        if it[0] == "action" and it[2] and i + 1 < len(items):
            items[i + 1][1] = items[i + 1][1].lstrip(" \t\r\n")
    if "{{" in "".join(it[1] for it in items if it[0] == "text"):
        raise TemplateError(f"{name}: unbalanced {{{{")
    if "}}" in "".join(it[1] for it in items if it[0] == "text"):
        raise TemplateError(f"{name}: unbalanced }}}}")
    return [(it[0], it[1]) for it in items]


def _parse_blocks(items, name):
    """Nest if/else/end and define into a tree. Returns (body, defines)."""
    defines = {}
    root = []
    stack = [("root", root, None)]
    for kind, s in items:
        cur = stack[-1][1]
        if kind == "text":
            if s:
                cur.append(("text", s))
            continue
        if s.startswith("/*"):
            if not s.endswith("*/"):
                raise TemplateError(f"{name}: unterminated comment")
            continue
        word = s.split(None, 1)[0] if s else ""
        rest = s[len(word):].strip()
        if word == "if":
            node = {"branches": [(rest, [])], "else": None}
            cur.append(("if", node))
            stack.append(("if", node["branches"][0][1], node))
        elif word == "else":
            if stack[-1][0] != "if":
                raise TemplateError(f"{name}: else outside if")
            node = stack[-1][2]
            stack.pop()
            if rest.startswith("if "):
                node["branches"].append((rest[3:].strip(), []))
                stack.append(("if", node["branches"][-1][1], node))
            elif rest == "":
                node["else"] = []
                stack.append(("else", node["else"], node))
            else:
                raise TemplateError(f"{name}: unsupported else form: {s}")
        elif word == "define":
            m = re.fullmatch(r'"([^"]+)"', rest)
            if not m:
                raise TemplateError(f"{name}: bad define: {s}")
            body = []
            defines[m.group(1)] = body
            stack.append(("define", body, None))
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError(f"{name}: end without a block")
            stack.pop()
        elif word in ("range", "with", "template", "block", "break", "continue"):
            raise TemplateError(f"{name}: '{word}' is not supported by this renderer")
        else:
            cur.append(("expr", s))
    if len(stack) != 1:
        raise TemplateError(f"{name}: {len(stack) - 1} block(s) not closed with end")
    return root, defines


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<field>\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[()|]))"
)


def _lex(expr):
    toks = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse expression at: {expr[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            val = json.loads(val)
            kind = "lit"
        elif kind == "raw":
            val = val[1:-1]
            kind = "lit"
        elif kind == "num":
            val = float(val) if "." in val else int(val)
            kind = "lit"
        elif kind == "ident" and val in ("true", "false"):
            val = val == "true"
            kind = "lit"
        toks.append((kind, val))
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return toks


def _to_yaml(v):
    if v is None:
        return "null"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def _go_str(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _truthy(v):
    return bool(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v != 0


def _printf(fmt, *args):
    out = []
    i = 0
    ai = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            if verb == "%":
                out.append("%")
            elif verb in "svd":
                if ai >= len(args):
                    raise TemplateError(f"printf {fmt!r}: too few arguments")
                out.append(_go_str(args[ai]))
                ai += 1
            else:
                raise TemplateError(f"printf verb %{verb} not supported")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Renderer:
    def __init__(self, values, chart, release_name="bedside", defines=None):
        self.root = {
            "Values": values,
            "Chart": {
                "Name": chart["name"],
                "Version": chart["version"],
                "AppVersion": chart.get("appVersion", ""),
            },
            "Release": {"Name": release_name, "Service": "Helm", "Namespace": "default"},
        }
        self.defines = dict(defines or {})

    # --- expressions -------------------------------------------------------------------
    def _field(self, dot, path):
        if path == ".":
            return dot
        cur = dot
        walked = ""
        for part in path[1:].split("."):
            walked += "." + part
            if not isinstance(cur, dict) or part not in cur:
                raise TemplateError(f"{walked}: no such value")
            cur = cur[part]
        return cur

    def _operand(self, toks, i, dot):
        kind, val = toks[i]
        if kind == "lit":
            return val, i + 1
        if kind == "field":
            return self._field(dot, val), i + 1
        if kind == "punct" and val == "(":
            depth = 0
            for j in range(i, len(toks)):
                if toks[j] == ("punct", "("):
                    depth += 1
                elif toks[j] == ("punct", ")"):
                    depth -= 1
                    if depth == 0:
                        return self._pipeline(toks[i + 1:j], dot), j + 1
            raise TemplateError("unbalanced parentheses")
        if kind == "ident":
            return ("__func__", val), i + 1
        raise TemplateError(f"unexpected token {val!r}")

    def _command(self, toks, dot, piped):
        args = []
        i = 0
        while i < len(toks):
            v, i = self._operand(toks, i, dot)
            args.append(v)
        if args and isinstance(args[0], tuple) and args[0] and args[0][0] == "__func__":
            fn = args[0][1]
            rest = args[1:]
            if piped is not _NOTHING:
                rest.append(piped)
            return self._call(fn, rest, dot)
        if len(args) != 1 or piped is not _NOTHING:
            raise TemplateError("a value cannot take arguments")
        return args[0]

    def _pipeline(self, toks, dot):
        cmds = [[]]
        depth = 0
        for t in toks:
            if t == ("punct", "("):
                depth += 1
            elif t == ("punct", ")"):
                depth -= 1
            if t == ("punct", "|") and depth == 0:
                cmds.append([])
            else:
                cmds[-1].append(t)
        val = _NOTHING
        for c in cmds:
            if not c:
                raise TemplateError("empty command in pipeline")
            val = self._command(c, dot, val)
        return val

    def _call(self, fn, a, dot):
        def need(n):
            if len(a) != n:
                raise TemplateError(f"{fn} takes {n} argument(s), got {len(a)}")

        if fn == "include":
            need(2)
            if a[0] not in self.defines:
                raise TemplateError(f"include: no template named {a[0]!r}")
            return self._render(self.defines[a[0]], a[1])
        if fn == "default":
            need(2)
            return a[1] if _truthy(a[1]) else a[0]
        if fn == "printf":
            return _printf(a[0], *a[1:])
        if fn == "trunc":
            need(2)
            return _go_str(a[1])[: a[0]]
        if fn == "trimSuffix":
            need(2)
            s = _go_str(a[1])
            return s[: -len(a[0])] if a[0] and s.endswith(a[0]) else s
        if fn == "quote":
            need(1)
            return json.dumps(_go_str(a[0]))
        if fn in ("indent", "nindent"):
            need(2)
            pad = " " * a[0]
            s = "\n".join(pad + line for line in _go_str(a[1]).split("\n"))
            return ("\n" + s) if fn == "nindent" else s
        if fn == "toYaml":
            need(1)
            return _to_yaml(a[0])
        if fn == "toJson":
            need(1)
            return json.dumps(a[0], separators=(",", ":"))
        if fn == "sha256sum":
            need(1)
            return hashlib.sha256(_go_str(a[0]).encode()).hexdigest()
        if fn == "and":
            r = True
            for x in a:
                r = x
                if not _truthy(x):
                    return x
            return r
        if fn == "or":
            for x in a:
                if _truthy(x):
                    return x
            return a[-1] if a else False
        if fn == "not":
            need(1)
            return not _truthy(a[0])
        if fn == "eq":
            need(2)
            return a[0] == a[1]
        if fn == "ne":
            need(2)
            return a[0] != a[1]
        if fn == "ternary":
            need(3)
            return a[0] if _truthy(a[2]) else a[1]
        if fn == "join":
            need(2)
            return a[0].join(_go_str(x) for x in (a[1] or []))
        raise TemplateError(f"function {fn!r} is not supported by this renderer")

    def eval(self, expr, dot):
        return self._pipeline(_lex(expr), dot)

    # --- blocks ------------------------------------------------------------------------
    def _render(self, nodes, dot):
        out = []
        for kind, node in nodes:
            if kind == "text":
                out.append(node)
            elif kind == "expr":
                out.append(_go_str(self.eval(node, dot)))
            elif kind == "if":
                for cond, body in node["branches"]:
                    if _truthy(self.eval(cond, dot)):
                        out.append(self._render(body, dot))
                        break
                else:
                    if node["else"] is not None:
                        out.append(self._render(node["else"], dot))
        return "".join(out)

    def load(self, text, name):
        """Parse a template; returns its body and registers its defines."""
        body, defines = _parse_blocks(_tokenize_template(text, name), name)
        self.defines.update(defines)
        return body

    def render(self, body):
        return self._render(body, self.root)


class _Nothing:
    pass


_NOTHING = _Nothing()


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def render_chart(chart_dir, overrides=None, release="bedside"):
    """Render every template of the chart: {template file name: rendered text}."""
    import os

    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f)
    values = deep_merge(values, overrides or {})
    r = Renderer(values, chart, release)
    tdir = os.path.join(chart_dir, "templates")
    names = sorted(os.listdir(tdir))
    bodies = {}
    # Helpers first, so every define is known before any include.
    for n in sorted(names, key=lambda n: not n.startswith("_")):
        with open(os.path.join(tdir, n)) as f:
            text = f.read()
        bodies[n] = r.load(text, n)
    out = {}
    for n in names:
        if n.startswith("_"):
            continue
        try:
            out[n] = r.render(bodies[n])
        except TemplateError as e:
            raise TemplateError(f"{n}: {e}") from None
    return out
