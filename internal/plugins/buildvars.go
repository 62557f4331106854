package plugins

import (
	"strconv"

	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/provisioner"
)

// generatedFields are Packer's amazon-ebs "generated data", the attributes
// of HCL2's `build` object.
var generatedFields = []string{
	"ID", "Host", "Port", "User", "Password", "ConnType", "PackerRunUUID",
	"PackerHTTPIP", "PackerHTTPPort", "PackerHTTPAddr", "SSHPublicKey", "SSHPrivateKey",
	"SourceAMI", "SourceAMIName", "SourceAMIOwner", "SourceAMIOwnerName",
	"SourceAMICreationDate", "BuildRegion", "WinRMPassword",
}

// BuildVars is the `build` object of a running build. extra adds fields the
// builder knows beyond provisioner.Build (SourceAMIOwner, ...).
func BuildVars(b *provisioner.Build, extra map[string]string) map[string]cty.Value {
	known := map[string]string{
		"ID":            b.InstanceID,
		"Host":          b.Host,
		"Port":          strconv.Itoa(b.Port),
		"User":          b.User,
		"ConnType":      "ssh",
		"PackerRunUUID": b.RunUUID,
		"SSHPrivateKey": b.SSHPrivateKey,
		"SourceAMI":     b.SourceAMI,
		"SourceAMIName": b.SourceAMIName,
		"BuildRegion":   b.Region,
	}
	for k, v := range extra {
		known[k] = v
	}
	attrs := make(map[string]cty.Value, len(generatedFields))
	for _, f := range generatedFields {
		attrs[f] = cty.StringVal(known[f])
	}
	return map[string]cty.Value{"build": cty.ObjectVal(attrs)}
}
