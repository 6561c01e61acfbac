/**
 * Statistics as charts, for the last 24 h, 7 d or 30 d: the incident
 * summary, resolution time P50/P95/P99 by severity, AI performance
 * (proposals and acceptance by source, fallback reasons, cache hits,
 * consensus) and the most affected services. Charts are hand-drawn SVG
 * (no library to ship or trust); every figure is also written as text, so
 * a screen reader and the browser test read the same numbers.
 */
import { IncidentStatus, Severity, type VerdictClient } from "@verdict/client";
import { h, svg } from "./dom.js";
import { durationMs, percent, span } from "./format.js";

export const RANGES: Record<string, number> = { "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3, "30d": 30 * 24 * 3600e3 };

interface Bar {
  label: string;
  value: number;
  text?: string;
}

/** A horizontal bar chart with its values as text. */
export function bars(title: string, items: Bar[], id: string): HTMLElement {
  const width = 320;
  const rowH = 22;
  const labelW = 110;
  const max = Math.max(1, ...items.map((b) => b.value));
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${Math.max(1, items.length) * rowH}`, role: "img", "aria-label": `${title}: ${items.map((b) => `${b.label} ${b.text ?? b.value}`).join(", ") || "none"}`, class: "chart" },
    ...items.flatMap((b, n) => {
      const y = n * rowH;
      const w = Math.max(b.value > 0 ? 2 : 0, ((width - labelW - 60) * b.value) / max);
      return [
        svg("text", { x: 0, y: y + 15, class: "chart-label" }, b.label),
        svg("rect", { x: labelW, y: y + 4, width: w.toFixed(1), height: rowH - 8, rx: 2, class: "chart-bar" }),
        svg("text", { x: labelW + w + 6, y: y + 15, class: "chart-value" }, b.text ?? String(b.value)),
      ];
    }),
  );
  return h("figure", { class: "card", id }, h("figcaption", {}, title), items.length ? chart : h("p", { class: "help" }, "Nothing in this range."));
}

function figure(label: string, value: string, id: string): HTMLElement {
  return h("div", { class: "card figure" }, h("span", { class: "big", "data-stat": id }, value), h("span", {}, label));
}

export class StatsView {
  readonly el = h("section", { class: "stats", "aria-labelledby": "stats-title" });
  private readonly body = h("div", { class: "grid", "aria-live": "polite" });

  constructor(
    private readonly client: VerdictClient,
    private range: string,
    private readonly go: (range: string) => void,
  ) {
    const picker = h(
      "div",
      { class: "ranges", role: "group", "aria-label": "Time range" },
      ...Object.keys(RANGES).map((r) => {
        const b = h("button", { type: "button", class: "secondary", "aria-pressed": String(r === range), "data-range": r }, r);
        b.addEventListener("click", () => this.go(r));
        return b;
      }),
    );
    this.el.append(h("h1", { id: "stats-title" }, "Statistics"), picker, this.body);
    void this.load();
  }

  dispose(): void {}

  private async load(): Promise<void> {
    const since = new Date(Date.now() - (RANGES[this.range] ?? RANGES["24h"]!));
    this.body.replaceChildren(h("p", {}, "Loading…"));
    try {
      const [summary, resolution, ai, services] = await Promise.all([
        this.client.getIncidentSummary({ since }),
        this.client.getResolutionStats({ since }),
        this.client.getAiPerformance({ since }),
        this.client.getAffectedServices({ since, limit: 10 }),
      ]);
      const resolutionRows = resolution.bySeverity
        .filter((s) => s.figures && s.figures.count > 0n)
        .flatMap((s) =>
          (["p50", "p95", "p99"] as const).map((q) => ({
            label: `${Severity[s.severity]} ${q.toUpperCase()}`,
            value: durationMs(s.figures![q]),
            text: span(durationMs(s.figures![q])),
          })),
        );
      this.body.replaceChildren(
        figure(`incidents created (${this.range})`, String(summary.created), "created"),
        figure("open now", String(summary.open), "open"),
        figure("resolved (in range)", String(resolution.overall?.count ?? 0n), "resolved"),
        figure("decisions (in range)", String(ai.decisions), "decisions"),
        bars("Created by severity", summary.bySeverity.map((s) => ({ label: Severity[s.severity], value: Number(s.count) })), "by-severity"),
        bars(
          "Incidents by status now",
          summary.currentByStatus.map((s) => ({ label: IncidentStatus[s.status], value: Number(s.count) })),
          "by-status",
        ),
        bars(
          `Resolution time (overall P50 ${span(durationMs(resolution.overall?.p50))}, P95 ${span(durationMs(resolution.overall?.p95))}, P99 ${span(durationMs(resolution.overall?.p99))})`,
          resolutionRows,
          "resolution",
        ),
        bars("Proposals by source", ai.sources.map((s) => ({ label: s.source, value: Number(s.proposals) })), "sources"),
        bars(
          "Approval rate by source",
          ai.sources.map((s) => ({ label: s.source, value: s.approvalRate, text: percent(s.approvalRate) })),
          "acceptance",
        ),
        bars("Fallbacks to the expert engine", ai.fallbacks.map((f) => ({ label: f.reason, value: Number(f.count) })), "fallbacks"),
        bars(
          "Engines",
          [
            { label: "cache hits", value: ai.cacheHitRate, text: percent(ai.cacheHitRate) },
            { label: "LLM win rate", value: ai.llmWinRate, text: percent(ai.llmWinRate) },
            { label: "consensus", value: ai.meanConsensusScore, text: ai.meanConsensusScore.toFixed(2) },
          ],
          "engines",
        ),
        bars("Most affected services", services.map((s) => ({ label: s.service, value: Number(s.incidents) })), "services"),
      );
    } catch (e) {
      this.body.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot load statistics: ${e instanceof Error ? e.message : String(e)}`));
    }
  }
}
