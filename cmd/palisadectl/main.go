// Command palisadectl is Palisade's operator CLI: containerd and RuntimeClass
// configuration for the handlers of a config.toml, host checks (doctor),
// decision records (inspect) and config validation (policy check).
package main

import (
	"context"
	"os"

	"github.com/palisade-runtime/palisade/cmd/palisadectl/internal/ctl"
)

func main() {
	os.Exit(ctl.Main(context.Background(), os.Args))
}
