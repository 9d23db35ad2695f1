export interface APIKey {
  app: string;
  id: string;
  secret: string;
}
export function parseKey(s: string): APIKey;
export function mintToken(key: APIKey, sub: string, caps: Record<string, string[]>, ttlSeconds: number, now?: number): string;
export function startServer(opts: {
  url: string;
  key: string;
  rooms?: string[];
  port?: number;
  host?: string;
  caps?: Record<string, string[]>;
}): Promise<{ port: number; stats: { tokens: Record<string, number> }; close(): Promise<void> }>;
