"""PromQL checks for tests/it/deploy.rs, with the promql-parser package (PyPI).

Reads a JSON list of {"source", "expr"} on stdin and prints a JSON list of
{"source", "error", "metrics", "unsharded"}: the parse error (or null), the metric names the
expression selects, and the aggregations over a per-shard scheduler metric
(`campaign_manager_chain_*`) that do not keep the `shard` label. Grafana's template variables
($namespace, $shard) stand in string literals only, so every expression parses as it is.
"""

import json
import sys

import promql_parser as pp


def children(node):
    """The sub-expressions of a node."""
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return [node.expr]
    return []


def selectors(node):
    """Every vector selector under a node."""
    if isinstance(node, pp.VectorSelector):
        yield node
    for child in children(node):
        yield from selectors(child)


def keeps_shard(agg):
    modifier = agg.modifier
    if modifier is None:
        return False
    if modifier.type == pp.AggModifierType.By:
        return "shard" in modifier.labels
    return "shard" not in modifier.labels  # without (...)


def unsharded(node, out):
    if isinstance(node, pp.AggregateExpr):
        names = {s.name for s in selectors(node.expr)}
        if any(n and n.startswith("campaign_manager_chain_") for n in names) and not keeps_shard(agg=node):
            out.append(str(node)[:120])
    for child in children(node):
        unsharded(child, out)


def check(item):
    try:
        ast = pp.parse(item["expr"])
    except Exception as e:  # the parser raises its own exception types
        return {"source": item["source"], "error": str(e), "metrics": [], "unsharded": []}
    names = sorted({s.name for s in selectors(ast) if s.name})
    bad = []
    unsharded(ast, bad)
    return {"source": item["source"], "error": None, "metrics": names, "unsharded": bad}


def main():
    items = json.load(sys.stdin)
    json.dump([check(i) for i in items], sys.stdout)


if __name__ == "__main__":
    main()
