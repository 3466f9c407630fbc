// Judge modules the loop tests write next to their configs (`judge: {kind: module, path}`).

/** Prefers the response with more occurrences of options.token: P(a > b) = sigmoid(2 (count(a) - count(b))). */
export const LIKES_TOKEN_JUDGE = `export const name = 'likes-token';
export const positionBiased = false;
const count = (s, t) => s.split(t).length - 1;
export default function ({ a, b }, options) {
  const d = count(a, options.token) - count(b, options.token);
  return 1 / (1 + Math.exp(-2 * d));
}
`;
