locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "ci" {
  region        = var.region
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
  ami_name      = "amibake-ci-example-${local.stamp}"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"]
    most_recent = true
  }
  tags = {
    Name = "amibake-ci-example"
  }
}

build {
  sources = ["source.amazon-ebs.ci"]

  provisioner "shell" {
    inline = ["echo 'baked by CI' | tee /tmp/ci-example"]
  }

  # The CI job reads the AMI id from here (bake.sh build).
  post-processor "manifest" {
    output     = "manifest.json"
    strip_path = true
    custom_data = {
      commit = var.commit
    }
  }
}
