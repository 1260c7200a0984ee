/**
 * A safe-side estimate of a request's input tokens, for sizing a spend reservation before the provider has counted
 * anything: about 3 characters a token for text (real tokenizers average nearer 4), and a fixed budget for each binary
 * payload (base64 images, data: URLs), whose length says nothing about its token count.
 */
const CHARS_PER_TOKEN = 3;
const BINARY_PAYLOAD_TOKENS = 1600;
const MAX_DEPTH = 32;

function looksBinary(text: string): boolean {
  return text.length > 1000 && (text.startsWith('data:') || /^[A-Za-z0-9+/=\r\n]{200}/.test(text));
}

export function estimateInputTokens(params: unknown): number {
  let tokens = 0;
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') {
      tokens += looksBinary(value) ? BINARY_PAYLOAD_TOKENS : Math.ceil(value.length / CHARS_PER_TOKEN);
    } else if (value !== null && typeof value === 'object' && depth < MAX_DEPTH) {
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
      for (const item of Array.isArray(value) ? value : Object.values(value)) visit(item, depth + 1);
    }
  };
  visit(params, 0);
  return tokens;
}
