variable "region" {
  type    = string
  defualt = "us-east-1"
}
