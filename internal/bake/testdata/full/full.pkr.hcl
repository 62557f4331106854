# Everything at once: source_ami_filter, file upload and download of
# directories, a script with environment variables, a reboot, ami_regions,
# ami_users, build-time tags and a manifest.

variable "greeting" {
  type    = string
  default = "hello"
}

source "amazon-ebs" "full" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
  source_ami_filter {
    filters = {
      name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    }
    owners      = ["099720109477"]
    most_recent = true
  }
  ami_name        = "full-test"
  ami_description = "built from {{ .SourceAMIName }}"
  ami_regions     = ["us-west-2"]
  ami_users       = ["111122223333"]
  tags = {
    Base   = "{{ .SourceAMI }}"
    Region = "{{ .BuildRegion }}"
  }
  tag {
    key   = "Team"
    value = "platform"
  }
  snapshot_tags = { Kind = "root" }
  run_tags      = { Purpose = "test" }
}

build {
  sources = ["source.amazon-ebs.full"]

  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp/up"
  }

  provisioner "shell" {
    script           = "${path.root}/setup.sh"
    environment_vars = ["GREETING=${var.greeting}"]
    env              = { TARGET = build.ID }
  }

  provisioner "shell" {
    inline            = ["sudo reboot"]
    expect_disconnect = true
  }

  provisioner "shell" {
    inline = ["test -f /etc/greeting", "cat /etc/greeting"]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/etc/greeting"
    destination = "${path.cwd}/greeting.txt"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/opt/app/"
    destination = "${path.cwd}/downloaded/"
  }

  post-processor "manifest" {
    output      = "manifest.json"
    custom_data = { greeting = var.greeting }
  }
}
