region  = "eu-west-1"
regoin  = "eu-west-2"
