source "amazon-ebs" "app" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t3.micro"
  ssh_username  = "admin"
  ami_name      = "ansible-app"
}

build {
  sources = ["source.amazon-ebs.app"]

  provisioner "ansible" {
    playbook_file    = "./ansible/site.yml"
    user             = "admin"
    ansible_env_vars = ["ANSIBLE_ROLES_PATH=./shared-roles"]
  }

  provisioner "ansible-local" {
    playbook_file = "./local/local.yml"
    role_paths    = ["./local/roles/web"]
    group_vars    = "./local/group_vars"
  }
}
