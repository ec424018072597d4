"""The chart of one benchmark run: initial sync, history latency by address size, wallet-sync
throughput and notification latency, for every server of the run; or, for a scale run (its JSON
has a list of `samples`), indexing rate, memory and disk against the transactions indexed."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results, out):
    with open(results) as f:
        run = json.load(f)
    # A preset run's `samples` is its request count per method; a scale run's, its list.
    if isinstance(run.get("samples"), list):
        return scale(run, out)
    servers = run["servers"]
    names = [s["server"] for s in servers]
    palette = ["#b7410e", "#e08a5a", "#4c72b0", "#55a868", "#8c8c8c", "#8172b2", "#ccb974", "#64b5cd", "#c44e52"]
    colors = {n: palette[i % len(palette)] for i, n in enumerate(names)}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    chain = run["chain"]
    fig.suptitle(
        f"Preset {chain['preset']['name']}: {chain['txs']:,} transactions, {chain['height']:,} blocks "
        f"— {run['machine']}, {run['date']}",
        fontsize=11,
    )

    ax = axes[0][0]
    ax.barh(names, [s["sync_seconds"] for s in servers], color=[colors[n] for n in names])
    ax.set_xlabel("seconds (log)")
    ax.set_xscale("log")
    ax.set_title("Initial sync, wall time")
    ax.invert_yaxis()

    ax = axes[0][1]
    for s in servers:
        points = [
            (l["probe_txs"], l["result"]["Ok"]["p50_ms"])
            for l in s["latency"]
            if l["method"] == "blockchain.scripthash.get_history" and "Ok" in l["result"]
        ]
        if points:
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=s["server"], color=colors[s["server"]])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("transactions of the address (log)")
    ax.set_ylabel("ms (log)")
    ax.set_title("get_history, p50")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    wallet = [(s["server"], s["wallet_sync"]["Ok"]["addresses_per_s"]) for s in servers
              if s.get("wallet_sync") and "Ok" in s["wallet_sync"]]
    ax.barh([w[0] for w in wallet], [w[1] for w in wallet], color=[colors[w[0]] for w in wallet])
    ax.set_xlabel("addresses per second")
    ax.set_title(f"Wallet sync, {run['clients']} clients × 1,000 addresses")
    ax.invert_yaxis()

    ax = axes[1][1]
    notes = [(s["server"], s["notification"]["Ok"]["p50_ms"]) for s in servers
             if s.get("notification") and "Ok" in s["notification"]]
    ax.barh([n[0] for n in notes], [n[1] for n in notes], color=[colors[n[0]] for n in notes])
    ax.set_xlabel("ms (log)")
    ax.set_xscale("log")
    ax.set_title("New block → notification, p50")
    ax.invert_yaxis()

    fig.tight_layout()
    fig.savefig(out, dpi=90)


def scale(run, out):
    samples = run["samples"] + [run["last"]]
    txs = [s["txs"] / 1e6 for s in samples]
    mib = 1 << 20
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    fig.suptitle(f"Index alone, {run['mode']} mode: {samples[-1]['txs']:,} transactions — {run['machine']}", fontsize=11)
    ax = axes[0]
    ax.plot(txs[:-1], [s["tx_per_sec"] for s in samples[:-1]], color="#b7410e")
    ax.set_title("indexing rate (tx/s)")
    ax.set_ylim(bottom=0)
    ax = axes[1]
    ax.plot(txs, [s["rss_bytes"] / mib for s in samples], color="#b7410e", label="RSS")
    ax.plot(txs, [s["rss_anon_bytes"] / mib for s in samples], color="#4c72b0", label="RSS without file pages")
    ax.axhline(1024, color="#8c8c8c", linestyle="--", linewidth=1, label="1 GiB")
    ax.set_title("memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax = axes[2]
    ax.plot(txs, [s["disk_bytes"] / mib for s in samples], color="#b7410e", label="index directory")
    ax.plot(txs, [s["pending_compaction_bytes"] / mib for s in samples], color="#8c8c8c", label="pending compaction")
    ax.set_title("disk (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend()
    for ax in axes:
        ax.set_xlabel("transactions indexed (millions)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
