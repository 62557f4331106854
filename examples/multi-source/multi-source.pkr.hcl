# One build, two sources: Ubuntu 24.04 and Debian 12, with a
# provisioner override per source and a manifest of both AMIs.

variable "region" {
  type    = string
  default = "ap-northeast-1"
}

variable "version" {
  type    = string
  default = "1.0.0"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.version))
    error_message = "The version must be semantic, like 1.2.3."
  }
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
  common_tags = {
    Version = var.version
    Team    = "platform"
  }
}

source "amazon-ebs" "ubuntu" {
  region        = var.region
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
  source_ami_filter {
    filters = {
      name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    }
    owners      = ["099720109477"]
    most_recent = true
  }
  ami_name = "app-${var.version}-ubuntu-${local.timestamp}"
  tags     = merge(local.common_tags, { OS = "ubuntu" })
}

source "amazon-ebs" "debian" {
  region        = var.region
  instance_type = "t3.micro"
  ssh_username  = "admin"
  source_ami_filter {
    filters = {
      name = "debian-12-amd64-*"
    }
    owners      = ["136693071363"]
    most_recent = true
  }
  ami_name = "app-${var.version}-debian-${local.timestamp}"
  tags     = merge(local.common_tags, { OS = "debian" })
}

build {
  name    = "app"
  sources = ["source.amazon-ebs.ubuntu", "source.amazon-ebs.debian"]

  provisioner "shell" {
    inline = ["sudo apt-get update", "sudo apt-get install -y ca-certificates"]
    override = {
      "amazon-ebs.debian" = {
        inline = ["cloud-init status --wait", "sudo apt-get update", "sudo apt-get install -y ca-certificates curl"]
      }
    }
  }

  provisioner "shell" {
    only   = ["amazon-ebs.ubuntu"]
    inline = ["echo ${source.name} is an ${source.type} build"]
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
