# A playbook whose task fails.

source "amazon-ebs" "fail" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  ssh_username  = "admin"
  source_ami_filter {
    filters     = { name = "debian-12-amd64-*" }
    owners      = ["136693071363"]
    most_recent = true
  }
  ami_name = "never-made"
}

build {
  sources = ["source.amazon-ebs.fail"]

  provisioner "ansible" {
    playbook_file = "./failing.yml"
  }
}
