package bake

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/template"
)

// Load loads a template for Run, once: the data sources are evaluated with
// ctx (an interrupt stops their lookups) and with shared, the AWS state the
// run's builds use (pass the same to Options.Shared), so that a data
// source and a build with the same credentials check them once. What
// changes every run (timestamp(), uuidv4(), {{timestamp}}) is marked by
// the load itself and left out of the input digest; no second load is
// needed.
func Load(ctx context.Context, path string, lo template.LoadOptions, shared *awsclient.Shared) (*template.Template, hcl.Diagnostics) {
	lo.EvaluateDataSources = true
	lo.DataSource = amazonebs.DataSources(shared)
	return template.LoadContext(ctx, path, lo)
}
