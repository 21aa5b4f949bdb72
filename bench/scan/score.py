#!/usr/bin/env python3
"""Scores scanners' findings against bench/scan/gen.py's truth and prints bench/scan.sh's tables.

    score.py report OUT TREE HISTORY

OUT holds times.tsv and each tool's output (keygate-tree.json, detect-secrets-tree.json,
keygate-history.json); TREE holds truth.json, HISTORY truth-history.json.

A finding counts when it names the file, a line of the secret's span and the kind (each tool's
rules and plugins map to kinds below; in history, the commit too). Several findings of one kind
on one line count once. Findings of detect-secrets' generic plugins (keywords, entropy) map to
no kind: they are counted apart, by where they land.
"""

import collections
import json
import os
import sys

KEYGATE_KINDS = {
    "keygate-key": "keygate", "aws-access-key-id": "aws", "aws-secret-access-key": "aws",
    "github-pat": "github", "github-app-token": "github", "github-fine-grained-pat": "github",
    "stripe-secret-key": "stripe", "slack-token": "slack", "slack-webhook-url": "slack",
    "private-key": "private-key", "jwt": "jwt", "openai-api-key": "openai", "gitlab-pat": "gitlab",
    "sendgrid-api-key": "sendgrid", "twilio-api-key": "twilio", "url-password": "url-password",
}
DETECT_SECRETS_KINDS = {
    "AWS Access Key": "aws", "GitHub Token": "github", "Stripe Access Key": "stripe",
    "Slack Token": "slack", "Private Key": "private-key", "JSON Web Token": "jwt",
    "OpenAI Token": "openai", "GitLab Token": "gitlab", "SendGrid API Key": "sendgrid",
    "Twilio API Key": "twilio", "Basic Auth Credentials": "url-password",
}
KINDS = ["keygate", "aws", "github", "stripe", "slack", "private-key", "jwt", "openai", "gitlab",
         "sendgrid", "twilio", "url-password"]


def keygate_findings(path):
    with open(path) as f:
        report = json.load(f)
    out = []
    for f in report["findings"]:
        out.append({"path": f["path"], "line": f["line"], "commit": f.get("commit"),
                    "kind": KEYGATE_KINDS.get(f["rule_id"], f["rule_id"]), "rule": f["rule_id"]})
    return out, report


def detect_secrets_findings(path):
    with open(path) as f:
        report = json.load(f)
    out = []
    for name, found in report["results"].items():
        for f in found:
            out.append({"path": name.removeprefix("./"), "line": f["line_number"], "commit": None,
                        "kind": DETECT_SECRETS_KINDS.get(f["type"], "generic"), "rule": f["type"]})
    return out


class Truth:
    def __init__(self, secrets, decoys, with_commit):
        self.secrets, self.decoys = secrets, decoys
        self.with_commit = with_commit
        self.by_place = collections.defaultdict(list)
        for at, s in enumerate(secrets):
            self.by_place[(s["path"], s["kind"])].append(at)
        self.lines = collections.defaultdict(set)  # every line a secret spans, for generic hits
        for s in secrets:
            self.lines[s["path"]].update(range(s["lines"][0], s["lines"][1] + 1))
        self.decoy_lines = collections.defaultdict(dict)
        for d in decoys:
            self.decoy_lines[d["path"]][d["line"]] = d

    def match(self, finding, check_commit=True):
        """The secrets a finding names (by index)."""
        return [at for at in self.by_place.get((finding["path"], finding["kind"]), [])
                if self.secrets[at]["lines"][0] <= finding["line"] <= self.secrets[at]["lines"][1]
                and (not (self.with_commit and check_commit)
                     or self.secrets[at]["commit"] == finding["commit"])]


def score(truth, findings):
    """Per kind: planted, found, findings (deduplicated), true findings; and the rest."""
    per = {k: {"planted": 0, "found": 0, "findings": 0, "true": 0} for k in KINDS}
    for s in truth.secrets:
        per.setdefault(s["kind"], {"planted": 0, "found": 0, "findings": 0, "true": 0})["planted"] += 1
    found = set()
    seen = set()
    false = []
    generic = collections.Counter()
    generic_where = collections.Counter()
    wrong_commit = 0
    for f in findings:
        if f["kind"] == "generic":
            generic[f["rule"]] += 1
            if f["line"] in truth.lines.get(f["path"], ()):
                generic_where["on a planted secret"] += 1
            elif f["line"] in truth.decoy_lines.get(f["path"], {}):
                generic_where["on a decoy"] += 1
            else:
                generic_where["elsewhere"] += 1
            continue
        key = (f["path"], f["line"], f["kind"], f["commit"])
        if key in seen:
            continue
        seen.add(key)
        entry = per.setdefault(f["kind"], {"planted": 0, "found": 0, "findings": 0, "true": 0})
        entry["findings"] += 1
        hits = truth.match(f)
        if hits:
            entry["true"] += 1
            found.update(hits)
        else:
            if truth.with_commit and truth.match(f, check_commit=False):
                wrong_commit += 1
            decoy = truth.decoy_lines.get(f["path"], {}).get(f["line"])
            false.append((f, decoy))
    for at in found:
        per[truth.secrets[at]["kind"]]["found"] += 1
    missed = [s for at, s in enumerate(truth.secrets) if at not in found]
    return {"per": per, "false": false, "missed": missed, "generic": generic,
            "generic_where": generic_where, "wrong_commit": wrong_commit}


def file_kind(path):
    """`.py`, `.env` (for .env.local too), …: what kind of file a path is."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith(".env"):
        return ".env"
    return "." + name.rsplit(".", 1)[-1] if "." in name else name


def pct(a, b):
    return "—" if b == 0 else "%.1f %%" % (100.0 * a / b)


def times(work):
    """{(tool, target): [(wall s, user s, sys s, max RSS KiB), ...]}"""
    out = collections.defaultdict(list)
    with open(os.path.join(work, "times.tsv")) as f:
        for line in f:
            tool, target, _, wall, user, system, rss = line.split("\t")
            out[(tool, target)].append((float(wall), float(user), float(system), int(rss)))
    return out


def median_run(runs):
    """The run of median wall time, and the wall times of all."""
    ordered = sorted(runs)
    return ordered[(len(ordered) - 1) // 2], [r[0] for r in runs]


def report(work, tree_dir, history_dir):
    truth_tree = json.load(open(os.path.join(tree_dir, "truth.json")))
    truth_history = json.load(open(os.path.join(history_dir, "truth-history.json")))
    measured = times(work)
    kg, kg_report = keygate_findings(os.path.join(work, "keygate-tree.json"))
    ds = detect_secrets_findings(os.path.join(work, "detect-secrets-tree.json"))
    kh, kh_report = keygate_findings(os.path.join(work, "keygate-history.json"))
    tree = Truth(truth_tree["secrets"], truth_tree["decoys"], False)
    history = Truth(truth_history["secrets"], [], True)
    s_kg, s_ds, s_kh = score(tree, kg), score(tree, ds), score(history, kh)

    tree_mb = truth_tree["bytes"] / 1e6
    history_mb = truth_history["bytes"] / 1e6
    print("## Speed (median of %d runs)" % len(measured[("keygate", "tree")]))
    print()
    print("| scan | input | wall (median) | all runs | MB/s | CPU (user + sys) | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    rows = [("keygate scan", "keygate", "tree", "tree: %d files, %.0f MB" % (truth_tree["files"], tree_mb), tree_mb),
            ("detect-secrets scan --all-files", "detect-secrets", "tree", "the same tree", tree_mb),
            ("keygate scan --history", "keygate", "history",
             "%d commits, %d blobs, %.0f MB" % (truth_history["commits"], truth_history["blobs"], history_mb), history_mb)]
    walls = {}
    for label, tool, target, what, mb in rows:
        runs = measured.get((tool, target))
        if not runs:
            print("| %s | %s | not run | | | | |" % (label, what))
            continue
        (wall, user, system, rss), all_walls = median_run(runs)
        walls[(tool, target)] = wall
        print("| %s | %s | %.2f s | %s | %.1f | %.1f s | %.0f MiB |" % (
            label, what, wall, ", ".join("%.2f" % w for w in all_walls), mb / wall,
            user + system, rss / 1024))
    if ("keygate", "tree") in walls and ("detect-secrets", "tree") in walls:
        print()
        print("keygate is %.0f times as fast as detect-secrets on the tree (median wall times)." % (
            walls[("detect-secrets", "tree")] / walls[("keygate", "tree")]))
    print()
    print("detect-secrets has no history mode (it scans files, or a diff in its pre-commit hook).")
    print()

    print("## Accuracy on the tree (%d secrets planted, %d decoys)" % (len(tree.secrets), len(tree.decoys)))
    print()
    print("Recall: planted secrets found. Precision: findings of that kind that are planted secrets.")
    print()
    print("| kind | planted | keygate recall | keygate precision | detect-secrets recall | detect-secrets precision |")
    print("|---|---|---|---|---|---|")
    totals = {"kg": [0, 0, 0, 0], "ds": [0, 0, 0, 0]}
    for kind in KINDS + sorted(set(s_kg["per"]) - set(KINDS)):
        a, b = s_kg["per"][kind], s_ds["per"].get(kind, {"planted": 0, "found": 0, "findings": 0, "true": 0})
        ds_cells = ("%s (%d/%d)" % (pct(b["found"], b["planted"]), b["found"], b["planted"]),
                    "%s (%d/%d)" % (pct(b["true"], b["findings"]), b["true"], b["findings"]))
        if kind == "keygate":
            ds_cells = ("no rule", "no rule")
        else:
            for i, v in enumerate(("planted", "found", "findings", "true")):
                totals["ds"][i] += b[v]
        if kind != "keygate":
            for i, v in enumerate(("planted", "found", "findings", "true")):
                totals["kg"][i] += a[v]
        print("| %s | %d | %s (%d/%d) | %s (%d/%d) | %s | %s |" % (
            kind, a["planted"], pct(a["found"], a["planted"]), a["found"], a["planted"],
            pct(a["true"], a["findings"]), a["true"], a["findings"], *ds_cells))
    k, d = totals["kg"], totals["ds"]
    print("| **shared kinds (all but keygate)** | %d | %s (%d/%d) | %s (%d/%d) | %s (%d/%d) | %s (%d/%d) |" % (
        k[0], pct(k[1], k[0]), k[1], k[0], pct(k[3], k[2]), k[3], k[2],
        pct(d[1], d[0]), d[1], d[0], pct(d[3], d[2]), d[3], d[2]))
    a = s_kg["per"]["keygate"]
    all_kg = [sum(v[x] for v in s_kg["per"].values()) for x in ("planted", "found", "findings", "true")]
    print("| **all, keygate's view** | %d | %s (%d/%d) | %s (%d/%d) | | |" % (
        all_kg[0], pct(all_kg[1], all_kg[0]), all_kg[1], all_kg[0],
        pct(all_kg[3], all_kg[2]), all_kg[3], all_kg[2]))
    print()
    print("detect-secrets' generic plugins (no kind): %s; of them %s." % (
        ", ".join("%s %d" % kv for kv in s_ds["generic"].most_common()) or "none",
        ", ".join("%d %s" % (v, k) for k, v in s_ds["generic_where"].most_common()) or "none"))
    print()
    ds_generic = {(f["path"], f["line"]) for f in ds if f["kind"] == "generic"}
    keys = [s for s in tree.secrets if s["kind"] == "keygate"]
    bad_keys = [d for d in tree.decoys if d["kind"] == "keygate"]
    print("keygate keys, which detect-secrets has no rule for: its generic plugins flagged the lines of "
          "%d of %d valid ones, and of %d of %d decoys (mistyped, too short)." % (
              sum((s["path"], s["line"]) in ds_generic for s in keys), len(keys),
              sum((d["path"], d["line"]) in ds_generic for d in bad_keys), len(bad_keys)))
    print()
    for name, s in (("keygate", s_kg), ("detect-secrets", s_ds)):
        false = collections.Counter(
            "%s on a decoy %s" % (f["rule"], d["what"]) if d else "%s elsewhere" % f["rule"] for f, d in s["false"])
        missed = collections.Counter(
            "%s in %s (%s)" % (m["kind"], file_kind(m["path"]), m["context"]) for m in s["missed"]
            if not (name == "detect-secrets" and m["kind"] == "keygate"))
        print("%s: false positives: %s." % (name, "; ".join("%d × %s" % (v, k) for k, v in false.most_common()) or "none"))
        print()
        print("%s: missed: %s." % (name, "; ".join("%d × %s" % (v, k) for k, v in missed.most_common()) or "none"))
        print()
    edge = [s for s in tree.secrets if "edge" in s]
    if edge:
        edge_found = sum(1 for s in edge if s not in s_kg["missed"])
        print("keygate found %d of the %d secrets planted to start at its 4 MiB read windows' edges." % (
            edge_found, len(edge)))
        print()

    print("## Accuracy on the history (%d secrets in %d blobs, %d of them in HEAD's blobs)" % (
        len(history.secrets), truth_history["blobs"], truth_history["secrets_at_head"]))
    print()
    print("A finding counts when it also names the commit whose tree first holds the blob.")
    print()
    print("| kind | planted | keygate recall | keygate precision |")
    print("|---|---|---|---|")
    for kind in KINDS + sorted(set(s_kh["per"]) - set(KINDS)):
        a = s_kh["per"][kind]
        print("| %s | %d | %s (%d/%d) | %s (%d/%d) |" % (
            kind, a["planted"], pct(a["found"], a["planted"]), a["found"], a["planted"],
            pct(a["true"], a["findings"]), a["true"], a["findings"]))
    all_kh = [sum(v[x] for v in s_kh["per"].values()) for x in ("planted", "found", "findings", "true")]
    print("| **all** | %d | %s (%d/%d) | %s (%d/%d) |" % (
        all_kh[0], pct(all_kh[1], all_kh[0]), all_kh[1], all_kh[0],
        pct(all_kh[3], all_kh[2]), all_kh[3], all_kh[2]))
    print()
    false = collections.Counter("%s elsewhere" % f["rule"] for f, _ in s_kh["false"])
    print("keygate --history: blobs scanned %d of %d, %.1f MB of %.1f MB; findings naming another commit: %d; "
          "false positives: %s; missed: %s." % (
              kh_report["scanned"] + kh_report["skipped"], truth_history["blobs"], kh_report["bytes"] / 1e6,
              history_mb, s_kh["wrong_commit"],
              "; ".join("%d × %s" % (v, k) for k, v in false.most_common()) or "none",
              "; ".join("%d × %s" % (v, k) for k, v in collections.Counter(
                  "%s (%s)" % (m["kind"], m["context"]) for m in s_kh["missed"]).most_common()) or "none"))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "report":
        sys.exit(__doc__)
    report(*sys.argv[2:])
