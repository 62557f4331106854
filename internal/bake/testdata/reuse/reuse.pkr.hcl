# A build for input-digest reuse: a timestamped name (volatile, left out of
# the digest), a copy region, a script whose bytes are in the digest, and a
# manifest that records "reused".

variable "reuse" {
  type    = bool
  default = false
}

source "amazon-ebs" "app" {
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
  ami_name      = "app-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  ami_regions   = ["us-west-2"]
  tags          = { Team = "platform" }
  snapshot_tags = { Kind = "root" }
}

build {
  reuse   = var.reuse
  sources = ["source.amazon-ebs.app"]

  provisioner "shell" {
    script = "${path.root}/setup.sh"
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
