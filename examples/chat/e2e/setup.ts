// Global setup: the SDK build the page loads, and the Go binaries
// (ROOMCAST_BIN_DIR, e.g. the repo's bin/ after `make build`, or built here).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const repo = new URL("../../../", import.meta.url).pathname;

export default function setup(): () => void {
  execFileSync("npm", ["run", "--silent", "build"], { cwd: join(repo, "clients/js"), stdio: "inherit" });
  let tmp: string | undefined;
  const dir = process.env.ROOMCAST_BIN_DIR;
  if (!dir || !existsSync(join(dir, "roomcast"))) {
    tmp = mkdtempSync(join(tmpdir(), "roomcast-js-e2e-"));
    execFileSync("go", ["build", "-o", tmp + "/", "./cmd/roomcast"], { cwd: repo, stdio: "inherit" });
    process.env.ROOMCAST_BIN_DIR = tmp;
  }
  return () => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  };
}
