# HCL2 twin of hello_ami.json, the classic Packer tutorial template.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}

variable "aws_access_key" {
  type    = string
  default = "hoge"
}

variable "aws_secret_key" {
  type    = string
  default = "fuga"
}

locals {
  # The usual HCL2 stand-in for {{timestamp}}: 20261125234441.
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "hello_ami" {
  access_key    = var.aws_access_key
  secret_key    = var.aws_secret_key
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "hello_ami ${local.timestamp}"
}

build {
  sources = ["source.amazon-ebs.hello_ami"]
}
