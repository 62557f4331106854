package ec2sim_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amibake/amibake/internal/ec2sim"
)

const authHeader = "AWS4-HMAC-SHA256 Credential=AKIASIMULATOR000001/20261125/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"

// post sends a raw Query API request, as any EC2 client does on the wire.
func post(t *testing.T, srv *ec2sim.Server, auth string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type errorDoc struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

func TestWireFormat(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true})
	tests := []struct {
		name       string
		auth       string
		form       url.Values
		wantStatus int
		wantCode   string // "" for success
	}{
		{"success", authHeader, url.Values{"Action": {"DescribeRegions"}, "Version": {"2016-11-15"}}, 200, ""},
		{"not found", authHeader, url.Values{"Action": {"DescribeImages"}, "ImageId.1": {"ami-0123456789abcdef0"}}, 400, "InvalidAMIID.NotFound"},
		{"malformed id", authHeader, url.Values{"Action": {"DescribeImages"}, "ImageId.1": {"ami-xyz"}}, 400, "InvalidAMIID.Malformed"},
		{"unknown action", authHeader, url.Values{"Action": {"FlyToTheMoon"}}, 400, "InvalidAction"},
		{"no action", authHeader, url.Values{"Version": {"2016-11-15"}}, 400, "MissingAction"},
		{"unknown parameter", authHeader, url.Values{"Action": {"DescribeImages"}, "ImageIds.1": {"ami-0123456789abcdef0"}}, 400, "UnknownParameter"},
		{"unknown nested parameter root", authHeader, url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-0123456789abcdef0"}, "MinCount": {"1"}, "MaxCount": {"1"}, "CreditSpecifications.CpuCredits": {"standard"}}, 400, "UnknownParameter"},
		{"unsigned", "", url.Values{"Action": {"DescribeRegions"}}, 401, "AuthFailure"},
		{"missing description", authHeader, url.Values{"Action": {"CreateSecurityGroup"}, "GroupName": {"g"}}, 400, "MissingParameter"},
		{"missing counts", authHeader, url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-0123456789abcdef0"}}, 400, "MissingParameter"},
		{"dry run", authHeader, url.Values{"Action": {"DescribeRegions"}, "DryRun": {"true"}}, 412, "DryRunOperation"},
		{"bad filter", authHeader, url.Values{"Action": {"DescribeImages"}, "Filter.1.Name": {"colour"}, "Filter.1.Value.1": {"red"}}, 400, "InvalidParameterValue"},
		{"unknown region", strings.Replace(authHeader, "us-east-1", "mars-north-1", 1), url.Values{"Action": {"DescribeRegions"}}, 401, "AuthFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv, tt.auth, tt.form)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if tt.wantCode == "" {
				if !strings.Contains(body, `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`) || !strings.Contains(body, "<requestId>") {
					t.Fatalf("success body lacks the namespace or request id: %s", body)
				}
				return
			}
			var doc errorDoc
			if err := xml.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("error body is not AWS's error document: %v\n%s", err, body)
			}
			if len(doc.Errors) != 1 || doc.Errors[0].Code != tt.wantCode || doc.Errors[0].Message == "" || doc.RequestID == "" {
				t.Fatalf("error document = %+v, want code %s", doc, tt.wantCode)
			}
		})
	}
}

func TestSTSGetCallerIdentity(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true, AccountID: "210987654321"})
	c := sts.NewFromConfig(awsConfig(srv, "eu-west-1"))
	out, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *out.Account != "210987654321" || !strings.HasPrefix(*out.Arn, "arn:aws:iam::210987654321:") {
		t.Errorf("identity = %s %s", *out.Account, *out.Arn)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestQueryStringAndMalformedBody(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true})
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/?Action=DescribeRegions&Version=2016-11-15&RegionName.1=eu-west-1", nil)
	req.Header.Set("Authorization", authHeader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "<regionName>eu-west-1</regionName>") || strings.Contains(string(b), "us-east-1") {
		t.Fatalf("GET with a query string: %d %s", resp.StatusCode, b)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL()+"/", strings.NewReader("Action=DescribeRegions&%zz"))
	req.Header.Set("Authorization", authHeader)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "<Code>InvalidParameterValue</Code>") {
		t.Fatalf("malformed body: %d %s", resp.StatusCode, b)
	}
}
