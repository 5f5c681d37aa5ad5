package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/messagebus/messagebus/server"
	"github.com/spf13/cobra"
)

// Exit codes of mb verify.
const (
	verifyClean   = 0 // every store checked, nothing damaged
	verifyDamaged = 1 // damage found (in any store)
	verifyFailed  = 2 // usage error, data dir unreadable or in use, a store not checked
)

func newVerifyCommand() *cobra.Command {
	var dataDir, output, metadataStore string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every store of a stopped broker's data dir and report damage (read-only)",
		Long: `Check the data dir of a stopped broker without changing anything: every
journal segment (as recovery would scan it), the ledger index, the metadata
store and the delayed-delivery index. It prints one section per store, OK or
each problem found (file, offset, topic and entry ids where known), and what
the next start would lose.

Exit codes: 0 nothing damaged; 1 damage found; 2 usage error, the data dir
cannot be read or is not a data dir, a broker is running on it, or a store
could not be checked (and no damage was found elsewhere).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return exitError{verifyFailed, err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != outputText && output != outputJSON {
				return exitError{verifyFailed, fmt.Errorf("--output %q: text or json", output)}
			}
			r, err := server.Verify(dataDir, metadataStore)
			if err != nil {
				return exitError{verifyFailed, fmt.Errorf("verify: %w", err)}
			}
			w := cmd.OutOrStdout()
			if output == outputJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return exitError{verifyFailed, err}
				}
			} else if err := writeVerifyReport(w, r); err != nil {
				return exitError{verifyFailed, err}
			}
			switch {
			case r.Damaged():
				return exitError{code: verifyDamaged}
			case r.Incomplete():
				return exitError{code: verifyFailed}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{verifyFailed, err} })
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "./data", "the broker's data directory")
	f.StringVarP(&output, "output", "o", outputText, "output format: text or json")
	f.StringVar(&metadataStore, "metadata-store", os.Getenv("MB_METADATA_STORE"),
		"the broker's --metadata-store (env MB_METADATA_STORE): with etcd://..., the metadata is not in the data dir and is not checked")
	return cmd
}

const outputText = "text"

// exitError ends mb with code; err, when set, is printed first.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }

// exitCode returns the code mb exits with after err, and whether err says
// something still to be printed.
func exitCode(err error) (int, bool) {
	var e exitError
	if errors.As(err, &e) {
		return e.code, e.err != nil
	}
	return 1, true
}

// writeVerifyReport prints the report for a person.
func writeVerifyReport(w io.Writer, r *server.VerifyReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "data dir %s\n", r.DataDir)
	var damaged, unchecked []string
	for _, s := range r.Stores {
		fmt.Fprintf(&b, "\n%s (%s): %s", s.Store, s.Dir, strings.ToUpper(s.Status))
		if c := countsLine(s); c != "" {
			fmt.Fprintf(&b, ", %s", c)
		}
		b.WriteString("\n")
		if s.Error != "" && (s.Status != server.StatusDamaged || len(s.Problems) == 0) {
			fmt.Fprintf(&b, "  %s\n", s.Error)
		}
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "  %s %s\n", p.Level, p.Text)
		}
		for _, l := range s.Losses {
			fmt.Fprintf(&b, "  lost: %s\n", l)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
		switch {
		case s.Damaged():
			damaged = append(damaged, s.Store)
		case s.Status == server.StatusError:
			unchecked = append(unchecked, s.Store)
		}
	}
	b.WriteString("\n")
	switch {
	case len(damaged) > 0:
		fmt.Fprintf(&b, "DAMAGED: %s (see above; README \"Data integrity\")\n", strings.Join(damaged, ", "))
	case len(unchecked) > 0:
		fmt.Fprintf(&b, "NOT CHECKED: %s (see above)\n", strings.Join(unchecked, ", "))
	default:
		b.WriteString("OK: nothing damaged\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// countsLine summarises what a store's check read.
func countsLine(s server.StoreReport) string {
	c := s.Counts
	if c == nil {
		return ""
	}
	switch s.Store {
	case server.VerifyJournal:
		return fmt.Sprintf("%d segments, %s, %d entries readable", c["segments"], byteSize(c["bytes"]), c["entries"])
	case server.VerifyIndex:
		return fmt.Sprintf("%d %s", c["ledgers"], plural(c["ledgers"], "ledger", "ledgers"))
	case server.VerifyDelayed:
		if s.Status == server.StatusOK {
			return fmt.Sprintf("%d records (%d subscription indexes, %d delayed entries)", c["records"], c["indexes"], c["entries"])
		}
	default:
		if s.Status == server.StatusOK {
			return fmt.Sprintf("%d records", c["records"])
		}
	}
	return ""
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
