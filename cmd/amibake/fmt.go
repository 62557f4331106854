package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/template"
)

// fmtNotFormatted is fmt -check's exit status for unformatted input, as
// Packer's.
const fmtNotFormatted = 3

// fmtOptions are the parsed flags and arguments of `amibake fmt`.
type fmtOptions struct {
	check, diff, write, recursive bool
	paths                         []string // files, directories or "-"
}

// newFmtCmd is `amibake fmt`; runF, when set, runs instead of the
// formatting (tests of flag parsing).
func newFmtCmd(f *factory, runF func(context.Context, *fmtOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(_ context.Context, o *fmtOptions) error { return runFmt(f, o) }
	}
	o := &fmtOptions{}
	cmd := &cobra.Command{
		Use:   "fmt [flags] PATH...",
		Short: "Rewrite HCL2 templates and variable files in canonical style",
		Long: `Rewrite *.pkr.hcl and *.pkrvars.hcl files in canonical HCL style and print the
names of files that changed. A directory formats the files in it (-recursive:
and below). "-" reads standard input and writes standard output.
With -check, nothing is written and the exit status is 3 when a file is not
formatted.`,
		DisableFlagParsing: true,
	}
	cmd.Flags().BoolVar(&o.check, "check", false, "check formatting only; exit 3 if a file needs formatting")
	cmd.Flags().BoolVar(&o.diff, "diff", false, "print the changes as a unified diff")
	cmd.Flags().BoolVar(&o.write, "write", true, "write the result to the source file")
	cmd.Flags().BoolVar(&o.recursive, "recursive", false, "also format files in subdirectories")
	cmd.RunE = runPacker(cobra.ArbitraryArgs, func(cmd *cobra.Command, paths []string) error {
		o.paths = paths
		return runF(cmd.Context(), o)
	})
	return cmd
}

func runFmt(f *factory, o *fmtOptions) error {
	check, diff, write, recursive, paths := o.check, o.diff, o.write && !o.check, o.recursive, o.paths
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var diags hcl.Diagnostics
	files := map[string]*hcl.File{}
	unformatted := false
	format := func(name string, src []byte, stdio bool) error {
		out, d := template.FormatHCL(src, name)
		if d.HasErrors() {
			diags = append(diags, d...)
			files[name] = &hcl.File{Bytes: src}
			return nil
		}
		if stdio && !check && !diff {
			_, err := f.IO.Out.Write(out)
			return err
		}
		if bytes.Equal(src, out) {
			return nil
		}
		unformatted = true
		fmt.Fprintln(f.IO.Out, name)
		if diff {
			fmt.Fprint(f.IO.Out, template.UnifiedDiff(name, src, out))
		}
		if write && !stdio {
			if err := writeFileKeepMode(name, out); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			src, err := io.ReadAll(f.IO.In)
			if err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
			if err := format("<stdin>", src, true); err != nil {
				return err
			}
			continue
		}
		names, err := fmtFiles(p, recursive)
		if err != nil {
			return err
		}
		for _, name := range names {
			src, err := os.ReadFile(name)
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if err := format(name, src, false); err != nil {
				return err
			}
		}
	}
	if len(diags) > 0 {
		_ = template.WriteDiagnostics(f.IO.ErrOut, files, diags, f.IO.ColorEnabled())
		return &exitError{code: 1}
	}
	if check && unformatted {
		return &exitError{code: fmtNotFormatted}
	}
	return nil
}

// fmtFiles lists the files to format under path.
func fmtFiles(path string, recursive bool) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", path, err)
	}
	if !st.IsDir() {
		if !template.IsFormattable(path) {
			return nil, fmt.Errorf("format %s: only *.pkr.hcl and *.pkrvars.hcl files can be formatted", path)
		}
		return []string{path}, nil
	}
	var names []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if template.IsFormattable(d.Name()) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	sort.Strings(names)
	return names, nil
}

// writeFileKeepMode replaces a file's content atomically, keeping its mode.
func writeFileKeepMode(name string, data []byte) error {
	st, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".amibake-fmt-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Chmod(tmp.Name(), st.Mode().Perm()); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
