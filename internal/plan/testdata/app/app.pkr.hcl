variable "greeting" {
  type    = string
  default = "hello"
}

variable "api_token" {
  type      = string
  default   = "tok-SECRET-1234"
  sensitive = true
}

variable "expect_disconnect" {
  type    = bool
  default = false
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "app" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t3.micro"
  ssh_username  = "root"
  ami_name      = "app-${local.stamp}"
  ami_regions   = ["us-east-1"]
  ssh_timeout   = "3m"
  tags = {
    Greeting  = var.greeting
    BuildUUID = uuidv4()
    Base      = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.app"]

  provisioner "shell" {
    script            = "scripts/setup.sh"
    environment_vars  = ["GREETING=${var.greeting}", "API_TOKEN=${var.api_token}"]
    expect_disconnect = var.expect_disconnect
  }

  provisioner "file" {
    source      = "files/"
    destination = "/etc/app/"
  }

  provisioner "shell" {
    inline = ["echo done"]
  }
}
