package ec2sim

import (
	"fmt"
	"time"
)

const (
	ownerCanonical = "099720109477"
	ownerDebian    = "136693071363"
	tutorialAMI    = "ami-06128816a1c781a57"
	tutorialRegion = "ap-northeast-1"
)

// Every seeded image boots the same real system: the Debian 12 (bookworm)
// base set-up builds (internal/ec2sim/vm), whose /etc/os-release says so.
// Ubuntu-named images keep their names (templates filter on them) and
// their default user, and their descriptions say what they boot. Amazon
// Linux is not seeded: its dnf cannot be modelled on a Debian base, and no
// image here promises a system the machine is not.
const bootsDebian = " (simulated: boots Debian 12 bookworm)"

var (
	flavorNoble  = Flavor{Name: "ubuntu-24.04", User: "ubuntu"}
	flavorJammy  = Flavor{Name: "ubuntu-22.04", User: "ubuntu"}
	flavorDebian = Flavor{Name: "debian-12", User: "admin"}
	// The classic Packer tutorial logs in as root.
	flavorTutorial = Flavor{Name: "ubuntu-18.04", User: "root"}
)

// catalogueDates: several releases of each image so that most_recent
// matters; the oldest is deprecated, as AWS does with old public images.
var catalogueDates = []string{"20260612", "20260815", "20260912", "20261001", "20261105"}

func seedCatalogue(r *region) {
	add := func(name, desc, owner, alias, arch, root, date string, f Flavor, deprecated bool) {
		created, _ := time.Parse("20060102", date)
		id := stableID("ami-", r.name, name)
		if name == "tutorial" {
			id = tutorialAMI
			name = "ubuntu/images/hvm-ssd/ubuntu-bionic-18.04-amd64-server-20190212.1"
		}
		snap := &snapshot{
			ID: stableID("snap-", r.name, name), OwnerID: owner, State: "completed", Size: 8,
			Start: created, Flavor: f, public: true, Description: desc,
		}
		im := &image{
			ID: id, Name: name, Description: desc, OwnerID: owner, OwnerAlias: alias,
			Arch: arch, RootDevice: root, State: "available", ImageLocation: owner + "/" + name,
			Public: true, Created: created.Add(14 * time.Hour), Flavor: f, BootMode: "uefi-preferred",
			BDMs: []bdm{{DeviceName: root, SnapshotID: snap.ID, VolumeSize: 8, VolumeType: "gp3", DeleteOnTermination: true}},
		}
		if deprecated {
			im.Deprecation = created.AddDate(0, 2, 0)
		}
		if alias == "amazon" {
			im.ImageLocation = "amazon/" + name
		}
		r.images[im.ID] = im
		r.snapshots[snap.ID] = snap
	}
	for i, d := range catalogueDates {
		old := i == 0
		for _, arch := range []string{"amd64", "arm64"} {
			a := map[string]string{"amd64": "x86_64", "arm64": "arm64"}[arch]
			add(fmt.Sprintf("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-%s-server-%s", arch, d),
				"Canonical, Ubuntu, 24.04, "+arch+" noble image"+bootsDebian, ownerCanonical, "", a, "/dev/sda1", d, flavorNoble, old)
			add(fmt.Sprintf("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-%s-server-%s", arch, d),
				"Canonical, Ubuntu, 22.04 LTS, "+arch+" jammy image"+bootsDebian, ownerCanonical, "", a, "/dev/sda1", d, flavorJammy, old)
			add(fmt.Sprintf("debian-12-%s-%s-2000", arch, d), "Debian 12 ("+d+"-2000)", ownerDebian, "", a, "/dev/xvda", d, flavorDebian, old)
		}
	}
	if r.name == tutorialRegion {
		add("tutorial", "Canonical, Ubuntu, 18.04 LTS, amd64 bionic image build on 2019-02-12"+bootsDebian, ownerCanonical, "", "x86_64", "/dev/sda1", "20190212", flavorTutorial, false)
	}
}
