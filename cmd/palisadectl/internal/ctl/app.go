// Package ctl is palisadectl, the operator's command line for Palisade: it
// writes the containerd and Kubernetes configuration for the handlers of a
// config.toml, checks the host and the config, and shows what Palisade
// enforced on a container.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/palisade-runtime/palisade/cmd/palisadectl/internal/probe"
	"github.com/palisade-runtime/palisade/policy"
	"github.com/palisade-runtime/palisade/shim"
)

// env is what the commands read and write; tests replace all of it.
type env struct {
	stdout, stderr io.Writer
	host           probe.Host
	// support is what Create would tell policy about a handler on this host.
	support func(shim.Handler) (policy.Support, error)
}

// Main runs palisadectl with args (os.Args) and returns its exit status.
func Main(ctx context.Context, args []string) int {
	return run(ctx, args, env{stdout: os.Stdout, stderr: os.Stderr, host: probe.Real(), support: shim.HandlerSupport})
}

func run(ctx context.Context, args []string, e env) int {
	err := e.app().Run(ctx, args)
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(e.stderr, "palisadectl:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(e.stderr, "palisadectl:", err)
	return 1
}

// failed is the exit status of a command that has printed its own report.
func failed() error { return cli.Exit("", 1) }

// globalFlags are accepted by every command, before or after its name
// (palisadectl --config F doctor, palisadectl doctor --config F): urfave/cli
// hands a command's flags down to its subcommands, and each command's help
// lists them under GLOBAL OPTIONS.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "config",
			Aliases: []string{"c"},
			Value:   shim.DefaultConfigPath,
			Usage:   "Palisade's config.toml",
		},
		&cli.BoolFlag{
			Name:  "json",
			Usage: "print JSON instead of a table (inspect); refused by commands that print TOML, YAML or a report",
		},
	}
}

// textOnly wraps the action of a command that has no JSON form: --json is a
// global flag, and a script that asks for JSON must not get a table it
// cannot parse.
func textOnly(action cli.ActionFunc) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		if cmd.Bool("json") {
			return fmt.Errorf("%s: --json is not supported: this command has no JSON output", cmd.FullName())
		}
		return action(ctx, cmd)
	}
}

func (e env) app() *cli.Command {
	return &cli.Command{
		Name:      "palisadectl",
		Usage:     "configure, check and inspect Palisade (containerd-shim-palisade-v2)",
		Version:   shim.Version,
		Writer:    e.stdout,
		ErrWriter: e.stderr,
		// Errors are printed by run, which returns the status to main:
		// urfave/cli would otherwise call os.Exit itself.
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
		HideHelpCommand: true,
		Flags:           globalFlags(),
		Commands: []*cli.Command{
			{
				Name:  "config",
				Usage: "print configuration for Palisade's handlers",
				Commands: []*cli.Command{
					{
						Name:  "containerd",
						Usage: "a containerd drop-in (for `imports`) with one CRI runtime entry per handler",
						Flags: []cli.Flag{
							&cli.IntFlag{Name: "version", Value: 3, Usage: "containerd config version: 3 (containerd >= 2.0) or 4 (>= 2.3)"},
							&cli.StringFlag{Name: "shim-path", Usage: "absolute path of containerd-shim-palisade-v2, written as runtime_path (default: containerd finds it on PATH)"},
						},
						Action: textOnly(e.configContainerd),
					},
					{
						Name:   "runtimeclass",
						Usage:  "node.k8s.io/v1 RuntimeClass objects, one per handler",
						Action: textOnly(e.configRuntimeClass),
					},
				},
			},
			{
				Name:   "doctor",
				Usage:  "check that this host can run every handler; exit status 1 if one cannot",
				Action: textOnly(e.doctor),
			},
			{
				Name:      "inspect",
				Usage:     "show the decision record of a container: what was requested, what is enforced and by whom",
				ArgsUsage: "<container-id>",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "k8s.io", Usage: "containerd namespace"},
					&cli.StringFlag{Name: "state", Value: "/run/containerd", Usage: "containerd's state directory"},
				},
				Action: e.inspect,
			},
			{
				Name:  "events",
				Usage: "print the runtime monitoring alerts of the handlers that monitor (their alert files), oldest first",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing alerts as they come"},
					&cli.StringFlag{Name: "pod", Usage: "only alerts of pods of this name"},
					&cli.StringFlag{Name: "pod-namespace", Usage: "only alerts of pods in this Kubernetes namespace"},
					&cli.StringSliceFlag{Name: "file", Usage: "read this alert file instead of those of config.toml's handlers (repeatable)"},
				},
				Action: e.events,
			},
			{
				Name:  "policy",
				Usage: "work with handler policies",
				Commands: []*cli.Command{
					{
						Name:      "check",
						Usage:     "validate a config.toml (the argument, else --config) without starting anything; exit status 1 on any error",
						ArgsUsage: "[<config.toml>]",
						Action:    textOnly(e.policyCheck),
					},
				},
			},
		},
	}
}

// oneArg returns the single positional argument of cmd.
func oneArg(cmd *cli.Command, what string) (string, error) {
	if cmd.NArg() != 1 {
		return "", fmt.Errorf("%s: want exactly one %s, got %d arguments", cmd.FullName(), what, cmd.NArg())
	}
	return cmd.Args().First(), nil
}
