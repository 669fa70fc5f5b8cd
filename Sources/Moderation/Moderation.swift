// Moderation: input and output policies (rules, PII detectors, prompt-injection heuristics)
// applied to request and response text. Pure Swift, no model or server dependency, so
// `steward moderate` and the server share one implementation. See docs/governance.md.
