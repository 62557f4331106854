varable "region" {
  default = "us-east-1"
}
