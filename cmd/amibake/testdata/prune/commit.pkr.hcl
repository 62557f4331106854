# The tutorial as a per-commit CI job bakes it: the commit's version goes
# into the image, the build region copies to a second region, and the AMI
# name carries the build time.

variable "version" {
  type = string
}

variable "copy" {
  type    = bool
  default = true
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "hello_ami" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "hello_ami ${local.timestamp}"
  ami_regions   = var.copy ? ["us-west-2"] : []
  tags          = { App = "hello" }
}

build {
  sources = ["source.amazon-ebs.hello_ami"]

  provisioner "shell" {
    inline = ["echo ${var.version} > /etc/hello-version"]
  }
}
