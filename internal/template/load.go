package template

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// File name suffixes, as Packer's.
const (
	hcl2FileExt        = ".pkr.hcl"
	hcl2JSONFileExt    = ".pkr.json"
	hcl2VarFileExt     = ".pkrvars.hcl"
	hcl2VarJSONFileExt = ".pkrvars.json"
	hcl2AutoVarExt     = ".auto.pkrvars.hcl"
	hcl2AutoVarJSONExt = ".auto.pkrvars.json"
)

// Load is LoadContext without cancellation, for loads that call nothing
// out (validate, inspect, fmt: data sources not evaluated).
func Load(path string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	return LoadContext(context.Background(), path, opts)
}

// LoadContext reads the template at path: a legacy JSON template (*.json),
// an HCL2 file (*.pkr.hcl, *.pkr.json) or a directory of HCL2 files. ctx
// reaches the data sources (LoadOptions.DataSource), so that cancelling it
// stops their lookups. The returned diagnostics include warnings; the
// Template is nil only when nothing could be read. Even with errors, a
// partial Template is returned so that callers can print diagnostics with
// its Files.
func LoadContext(ctx context.Context, path string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	if opts.Cwd == "" {
		if wd, err := os.Getwd(); err == nil {
			opts.Cwd = wd
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read template",
			Detail:   fmt.Sprintf("Cannot read %s: %s.", path, osErrText(err)),
		}}
	}
	if st.IsDir() {
		files, varFiles, err := hcl2DirFiles(path)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template directory", Detail: err.Error()}}
		}
		if len(files) == 0 {
			return nil, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "No template files",
				Detail:   fmt.Sprintf("The directory %s contains no %s or %s files.", path, hcl2FileExt, hcl2JSONFileExt),
			}}
		}
		return loadHCL2(ctx, path, path, files, varFiles, opts)
	}
	switch {
	case strings.HasSuffix(path, hcl2FileExt), strings.HasSuffix(path, hcl2JSONFileExt), strings.HasSuffix(path, ".hcl"):
		return loadHCL2(ctx, path, filepath.Dir(path), []string{path}, nil, opts)
	case strings.HasSuffix(path, ".json"):
		src, err := readRegular(path, MaxTemplateSize)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template", Detail: sentence(err.Error())}}
		}
		return loadJSON(path, src, opts)
	}
	return nil, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Unknown template format",
		Detail:   fmt.Sprintf("%s is not a template: expected a legacy JSON template (.json), an HCL2 template (%s, %s) or a directory of HCL2 files.", path, hcl2FileExt, hcl2JSONFileExt),
	}}
}

// hcl2DirFiles lists a directory's HCL2 templates and auto var files,
// sorted so that loading is deterministic. Subdirectories are not read.
func hcl2DirFiles(dir string) (files, autoVars []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, hcl2FileExt), strings.HasSuffix(name, hcl2JSONFileExt):
			files = append(files, p)
		case strings.HasSuffix(name, hcl2AutoVarExt), strings.HasSuffix(name, hcl2AutoVarJSONExt):
			autoVars = append(autoVars, p)
		}
	}
	sort.Strings(files)
	sort.Strings(autoVars)
	return files, autoVars, nil
}

func osErrText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
