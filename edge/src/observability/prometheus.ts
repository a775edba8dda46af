// Prometheus text exposition (version 0.0.4) of the counters in D1 metric_counters.

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface Family {
	name: string;
	type: "counter" | "histogram";
	help: string;
}

export interface Sample {
	name: string;
	labels: Record<string, string>;
	value: number;
}

/** Label values escape backslash, double quote and newline, so no value can break out of its quotes. */
export function escapeLabelValue(value: string): string {
	return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(text: string): string {
	return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
	if (Number.isNaN(value)) return "NaN";
	if (value === Number.POSITIVE_INFINITY) return "+Inf";
	if (value === Number.NEGATIVE_INFINITY) return "-Inf";
	return String(value);
}

function formatSample(sample: Sample): string {
	const labels = Object.entries(sample.labels)
		.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
		.join(",");
	return `${sample.name}${labels ? `{${labels}}` : ""} ${formatValue(sample.value)}`;
}

function belongsTo(family: Family, sampleName: string): boolean {
	if (family.type === "histogram") return [`${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`].includes(sampleName);
	return sampleName === family.name;
}

/** Every family gets its HELP and TYPE lines, even before its first sample. */
export function renderExposition(families: Family[], samples: Sample[]): string {
	const lines: string[] = [];
	for (const family of families) {
		lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
		for (const sample of samples) if (belongsTo(family, sample.name)) lines.push(formatSample(sample));
	}
	return lines.join("\n") + "\n";
}
