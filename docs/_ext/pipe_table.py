"""``.. pipe-table::``: a table pasted as the benchmark scripts print it.

The scripts in ``benchmarks/`` print Markdown pipe tables::

    | dataset | method | time (s) |
    |---|---|---:|
    | diabetes (442x10) | HypergradSearchCV | 0.114 |

Indented under this directive, such a table is rendered as a list-table, so
that measured tables are pasted into the docs without being rewritten.
Columns whose separator ends with ``:`` are right-aligned.
"""

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


class PipeTable(Directive):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"class": directives.class_option}

    def run(self):
        rows = [line for line in self.content if line.strip()]
        if len(rows) < 2 or not all(r.strip().startswith("|") for r in rows):
            raise self.error(
                "pipe-table expects a Markdown table: a header line, a "
                "|---|---| separator line and rows, each starting with '|'."
            )
        header, separator, *body = (_cells(r) for r in rows)
        if not all(set(cell) <= set("-: ") for cell in separator):
            raise self.error(
                f"The second line of a pipe-table is not a separator: {rows[1]}"
            )
        for number, row in enumerate([header, *body], start=1):
            if len(row) != len(header):
                raise self.error(
                    f"Row {number} of the pipe-table has {len(row)} cells, the "
                    f"header {len(header)}."
                )
        lines = [f".. list-table:: {self.arguments[0] if self.arguments else ''}"]
        lines += ["   :header-rows: 1", "   :class: pipe-table", ""]
        for row in [header, *body]:
            for k, cell in enumerate(row):
                lines.append(f"   {'*' if k == 0 else ' '} - {cell or '..'}")
        node = nodes.container()
        self.state.nested_parse(StringList(lines), self.content_offset, node)
        right = [k for k, cell in enumerate(separator) if cell.endswith(":")]
        for table in node.findall(nodes.table):
            for entry_row in table.findall(nodes.row):
                for k, entry in enumerate(entry_row.children):
                    if k in right:
                        entry["classes"].append("text-end")
        return node.children


def setup(app):
    app.add_directive("pipe-table", PipeTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
