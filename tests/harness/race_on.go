//go:build race

package harness

// raceEnabled makes the harness build service binaries with -race when the
// tests themselves run with -race, so end-to-end tests race-check the
// services too.
const raceEnabled = true
