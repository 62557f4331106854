package ec2sim

import (
	"fmt"
	"time"
)

const (
	ownerCanonical = "099720109477"
	ownerAmazon    = "137112412989"
	ownerDebian    = "136693071363"
	tutorialAMI    = "ami-06128816a1c781a57"
	tutorialRegion = "ap-northeast-1"
)

func osRelease(pretty, name, id, version, codename string) string {
	return fmt.Sprintf("PRETTY_NAME=%q\nNAME=%q\nVERSION_ID=%q\nID=%s\nVERSION_CODENAME=%s\n", pretty, name, version, id, codename)
}

var (
	flavorNoble  = Flavor{Name: "ubuntu-24.04", User: "ubuntu", OSRelease: osRelease("Ubuntu 24.04.3 LTS", "Ubuntu", "ubuntu", "24.04", "noble")}
	flavorJammy  = Flavor{Name: "ubuntu-22.04", User: "ubuntu", OSRelease: osRelease("Ubuntu 22.04.5 LTS", "Ubuntu", "ubuntu", "22.04", "jammy")}
	flavorAL2023 = Flavor{Name: "al2023", User: "ec2-user", OSRelease: osRelease("Amazon Linux 2023", "Amazon Linux", "amzn", "2023", "")}
	flavorDebian = Flavor{Name: "debian-12", User: "admin", OSRelease: osRelease("Debian GNU/Linux 12 (bookworm)", "Debian GNU/Linux", "debian", "12", "bookworm")}
	// The classic Packer tutorial logs in as root.
	flavorTutorial = Flavor{Name: "ubuntu-18.04", User: "root", OSRelease: osRelease("Ubuntu 18.04.6 LTS", "Ubuntu", "ubuntu", "18.04", "bionic")}
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
				"Canonical, Ubuntu, 24.04, "+arch+" noble image", ownerCanonical, "", a, "/dev/sda1", d, flavorNoble, old)
			add(fmt.Sprintf("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-%s-server-%s", arch, d),
				"Canonical, Ubuntu, 22.04 LTS, "+arch+" jammy image", ownerCanonical, "", a, "/dev/sda1", d, flavorJammy, old)
			add(fmt.Sprintf("debian-12-%s-%s-2000", arch, d), "Debian 12 ("+d+"-2000)", ownerDebian, "", a, "/dev/xvda", d, flavorDebian, old)
		}
		for _, a := range []string{"x86_64", "arm64"} {
			add(fmt.Sprintf("al2023-ami-2023.9.%s.0-kernel-6.1-%s", d, a), "Amazon Linux 2023 AMI 2023.9."+d+".0 "+a+" HVM kernel-6.1",
				ownerAmazon, "amazon", a, "/dev/xvda", d, flavorAL2023, old)
		}
	}
	if r.name == tutorialRegion {
		add("tutorial", "Canonical, Ubuntu, 18.04 LTS, amd64 bionic image build on 2019-02-12", ownerCanonical, "", "x86_64", "/dev/sda1", "20190212", flavorTutorial, false)
	}
}
