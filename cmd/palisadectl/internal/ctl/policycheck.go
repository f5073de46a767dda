package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v3"

	"github.com/palisade-runtime/palisade/sandbox/monitor"
	"github.com/palisade-runtime/palisade/shim"
)

func (e env) policyCheck(_ context.Context, cmd *cli.Command) error {
	// The file is the argument, as in `policy check FILE`, or else the
	// global --config, as for every other command.
	path := cmd.String("config")
	switch {
	case cmd.NArg() > 1:
		return fmt.Errorf("%s: want at most one config.toml, got %d arguments", cmd.FullName(), cmd.NArg())
	case cmd.NArg() == 1:
		path = cmd.Args().First()
	}
	results, err := checkConfig(path)
	if err != nil {
		fmt.Fprintf(e.stdout, "%s: %v\n", path, err)
		return failed()
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	ok := true
	for _, r := range results {
		if r.err == nil {
			fmt.Fprintf(tw, "%s\tOK\n", r.name)
			continue
		}
		ok = false
		for i, line := range strings.Split(r.err.Error(), "\n") {
			if i == 0 {
				fmt.Fprintf(tw, "%s\terror: %s\n", r.name, line)
			} else {
				fmt.Fprintf(tw, "\terror: %s\n", line)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !ok {
		return failed()
	}
	return nil
}

// checkResult is the verdict on one handler, or on the file's own keys
// (name "default_handler", or the unknown top-level keys).
type checkResult struct {
	name string
	err  error
}

// checkConfig validates each handler of a config.toml on its own, as the
// shim would at Create: the keys (strictly), the handler's fields, and its
// floor, built by policy.NewFloor with the seccomp profile read from disk.
// The error is for a file that cannot be read or parsed at all.
func checkConfig(path string) ([]checkResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg shim.Config
	// Strict decoding still fills every known key, and then reports all the
	// unknown ones, which are attributed to their handler below.
	derr := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&cfg)
	var strict *toml.StrictMissingError
	unknown := map[string][]string{} // handler ("" for the top level) -> keys
	switch {
	case errors.As(derr, &strict):
		for _, e := range strict.Errors {
			key := e.Key()
			owner := ""
			if len(key) > 1 && key[0] == "handlers" {
				owner = key[1]
			}
			unknown[owner] = append(unknown[owner], strings.Join(key, "."))
		}
	case derr != nil:
		// Not TOML, or a value of the wrong type: ParseConfig says where.
		_, err := shim.ParseConfig(data)
		if err == nil {
			err = derr
		}
		return nil, err
	}

	var results []checkResult
	if keys := unknown[""]; len(keys) > 0 {
		results = append(results, checkResult{"(top level)", fmt.Errorf("unknown key(s) %s", strings.Join(keys, ", "))})
	}
	if err := cfg.ValidateHostDirs(); err != nil {
		results = append(results, checkResult{"(top level)", err})
	}
	if len(cfg.Handlers) == 0 {
		return nil, errors.New("handlers: no handler defined")
	}
	if n := cfg.DefaultHandler; n != "" {
		if _, ok := cfg.Handlers[n]; !ok {
			results = append(results, checkResult{"default_handler", fmt.Errorf("default_handler: no handler named %q", n)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Handlers)) {
		results = append(results, checkResult{name, checkHandler(name, cfg.Handlers[name], unknown[name])})
	}
	return results, nil
}

func checkHandler(name string, h shim.Handler, unknownKeys []string) error {
	if len(unknownKeys) > 0 {
		return fmt.Errorf("unknown key(s) %s", strings.Join(unknownKeys, ", "))
	}
	// Config.Validate names the field (handlers.<name>.<field>); a config of
	// this handler alone gets exactly this handler's errors.
	one := shim.Config{Handlers: map[string]shim.Handler{name: h}}
	if err := one.Validate(); err != nil {
		return err
	}
	if _, err := shim.LoadFloor(h.Policy); err != nil {
		return fmt.Errorf("handlers.%s.%w", name, err)
	}
	// The rules file is read at each sandbox's Create; a rule that does not
	// compile would fail every Create of the handler (or, on "continue",
	// leave every sandbox unmonitored): say so now.
	if h.Monitoring.Enabled {
		if _, err := monitor.LoadRules(h.Monitoring.RulesFile); err != nil {
			return fmt.Errorf("handlers.%s.monitoring.rules_file: %w", name, err)
		}
	}
	return nil
}
