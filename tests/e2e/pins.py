"""The real agent CLIs the end-to-end suite runs, pinned: a new release is tried by changing a pin here."""

from __future__ import annotations

# CLI name (the preset) -> (registry, package spec, executable name)
PINS: dict[str, tuple[str, str, str]] = {
    "claude": ("npm", "@anthropic-ai/claude-code@2.1.328", "claude"),
    "codex": ("npm", "@openai/codex@0.169.0", "codex"),
    "gemini": ("npm", "@google/gemini-cli@0.61.0", "gemini"),
    "opencode": ("npm", "opencode-ai@1.18.33", "opencode"),
    "aider": ("pypi", "aider-chat==0.86.2", "aider"),
}
