package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func itoa(i int) string { return strconv.Itoa(i) }

// mainPackageDir is where deploy/Dockerfile finds SERVICE's main package:
// services/<name> or cmd/<name>, relative to root.
func mainPackageDir(root, name string) (string, error) {
	for _, dir := range []string{filepath.Join("services", name), filepath.Join("cmd", name)} {
		if _, err := os.Stat(filepath.Join(root, dir, "main.go")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no services/%s/main.go or cmd/%s/main.go", name, name)
}
