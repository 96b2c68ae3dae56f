//! The config module's tests: parsing, resolution as aws-vault does it, editing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::resolve::parse_session_tags;
use super::*;

const FILE: &str = "~/.aws/config";

fn parse(text: &str) -> ConfigFile {
    match ConfigFile::parse(text, FILE) {
        Ok(c) => c,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match ConfigFile::parse(text, FILE) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn resolve(config: &ConfigFile, name: &str) -> ProfileChain {
    config.resolve(name, &no_env).unwrap()
}

fn names(chain: &ProfileChain) -> Vec<&str> {
    chain.links().iter().map(|l| l.name.as_str()).collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

// ---- parsing ----

#[test]
fn missing_file_is_an_empty_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::load(dir.path().join("nope")).unwrap();
    assert!(config.sections().is_empty());
    let chain = config.resolve("default", &no_env).unwrap();
    assert_eq!(names(&chain), ["default"]);
    assert!(!chain.target().in_file);
}

#[test]
fn unreadable_path_is_a_read_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = ConfigFile::load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

#[test]
fn non_utf8_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, b"[default]\nregion = \xff\n").unwrap();
    let err = ConfigFile::load(&path).unwrap_err().to_string();
    assert!(err.ends_with("line 2: is not UTF-8 text"), "{err}");
}

#[test]
fn keys_compare_lowercase_and_profile_names_keep_case() {
    // aws-vault's exampleConfig: REGION=, Role_Arn=, mfa_Serial=.
    let config = parse(
        "[profile withMFA]\nRole_Arn=arn:aws:iam::4451234513441615400570:role/aws_admin\n\
         mfa_Serial=arn:aws:iam::1234513441:mfa/blah\nREGION=us-east-1\nduration_seconds=1200\n",
    );
    let p = resolve(&config, "withMFA").target().clone();
    assert_eq!(p.mfa_serial, s("arn:aws:iam::1234513441:mfa/blah"));
    assert_eq!(
        p.role_arn,
        s("arn:aws:iam::4451234513441615400570:role/aws_admin")
    );
    assert_eq!(p.region, s("us-east-1"));
    assert_eq!(p.duration_seconds, Some(1200));
    assert!(config.resolve("withmfa", &no_env).is_err());
}

#[test]
fn comments_full_line_and_inline_after_whitespace() {
    let config = parse(
        "# top\n; also top\n[default] # header comment\n  # indented comment\n\
         region = moon-1 # Different from sso region\n\
         sso_region = moon-2  ; two spaces then semicolon\n\
         role_session_name = a#b;c\n\
         mfa_process = pass otp aws #work\n",
    );
    let d = config.profile_section("default").unwrap();
    assert_eq!(d.get("region"), Some("moon-1"));
    assert_eq!(d.get("sso_region"), Some("moon-2"));
    assert_eq!(d.get("role_session_name"), Some("a#b;c"));
    assert_eq!(d.get("mfa_process"), Some("pass otp aws"));
}

#[test]
fn nested_subsections_are_kept_and_do_not_leak_into_profile() {
    // aws-vault's nestedConfig.
    let config = parse(
        "[default]\n\n[profile testing]\naws_access_key_id=foo\naws_secret_access_key=bar\n\
         region=us-west-2\ns3=\n  max_concurrent_requests=10\n  max_queue_size=1000\n\
         output = json\n",
    );
    let t = config.profile_section("testing").unwrap();
    let s3 = t.entry("s3").unwrap();
    assert_eq!(s3.value(), "");
    assert_eq!(s3.nested_value("max_concurrent_requests"), Some("10"));
    assert_eq!(s3.nested_value("max_queue_size"), Some("1000"));
    assert_eq!(s3.nested()[1].line, 9);
    assert_eq!(t.get("output"), Some("json"));
    assert_eq!(t.get("max_queue_size"), None);
    let p = resolve(&config, "testing").target().clone();
    assert_eq!(p.region, s("us-west-2"));
}

#[test]
fn nested_line_without_equals_is_an_error() {
    assert_eq!(
        parse_err("[default]\ns3 =\n  max_concurrent_requests\n"),
        "~/.aws/config line 3: expected \"key = value\" nested under s3, found \"max_concurrent_requests\""
    );
}

#[test]
fn indented_line_after_a_value_continues_it_and_a_typed_key_refuses_that() {
    let config = parse("[profile a]\nregion = us-east-1\n  output = json\n");
    let a = config.profile_section("a").unwrap();
    assert_eq!(a.get("region"), Some("us-east-1\noutput = json"));
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "~/.aws/config line 2: region in [profile a] runs onto line 3 because that line is \
         indented; remove the indentation, found \"us-east-1\\noutput = json\""
    );
}

#[test]
fn indented_first_key_after_header_is_a_plain_key() {
    let config = parse("[profile a]\n  region = eu-west-1\n");
    assert_eq!(resolve(&config, "a").target().region, s("eu-west-1"));
}

#[test]
fn crlf_line_endings() {
    let config =
        parse("[default]\r\nregion = us-east-1\r\n\r\n[profile a]\r\nrole_arn = r # c\r\n");
    assert_eq!(resolve(&config, "a").target().region, s("us-east-1"));
    assert_eq!(resolve(&config, "a").target().role_arn, s("r"));
}

#[test]
fn utf8_bom_is_skipped() {
    let config = parse("\u{feff}[default]\nregion = us-east-1\n");
    assert_eq!(resolve(&config, "default").target().region, s("us-east-1"));
    assert!(config.to_bytes().starts_with("\u{feff}".as_bytes()));
}

#[test]
fn malformed_line_without_equals() {
    assert_eq!(
        parse_err("[default]\nregion = x\n\n\n\n\nfoo\n"),
        "~/.aws/config line 7: expected \"key = value\", found \"foo\""
    );
}

#[test]
fn colon_is_not_a_separator() {
    assert_eq!(
        parse_err("[default]\nregion: us-east-1\n"),
        "~/.aws/config line 2: expected \"key = value\", found \"region: us-east-1\""
    );
}

#[test]
fn missing_key_before_equals() {
    assert_eq!(
        parse_err("[default]\n= x\n"),
        "~/.aws/config line 2: expected \"key = value\", found \"= x\" (no key before \"=\")"
    );
}

#[test]
fn key_outside_any_section() {
    assert_eq!(
        parse_err("\n# comment\nregion = us-east-1\n[default]\n"),
        "~/.aws/config line 3: region is set before any section header; put it under [default] or [profile NAME]"
    );
}

#[test]
fn unterminated_section_header() {
    assert_eq!(
        parse_err("[default]\nregion = x\n[profile foo\n"),
        "~/.aws/config line 3: section header \"[profile foo\" has no closing \"]\""
    );
}

#[test]
fn text_after_section_header() {
    assert_eq!(
        parse_err("[profile foo] bar\n"),
        "~/.aws/config line 1: unexpected \"bar\" after the section header"
    );
}

#[test]
fn empty_section_names() {
    assert_eq!(
        parse_err("[]\n"),
        "~/.aws/config line 1: empty section header \"[]\""
    );
    assert_eq!(
        parse_err("[profile ]\n"),
        "~/.aws/config line 1: section header [profile] has no name after \"profile\""
    );
}

#[test]
fn duplicate_section() {
    assert_eq!(
        parse_err("[profile a]\nregion = x\n\n[profile a]\n"),
        "~/.aws/config line 4: section [profile a] appears twice (first on line 1); merge the two"
    );
}

#[test]
fn default_and_profile_default_both_present() {
    assert_eq!(
        parse_err("[default]\n[profile default]\n"),
        "~/.aws/config line 2: [profile default] and [default] (line 1) both define profile \"default\"; keep one"
    );
}

#[test]
fn profile_default_header_is_the_default_profile() {
    let config = parse("[profile default]\nregion = eu-central-1\n[profile a]\n");
    assert_eq!(resolve(&config, "a").target().region, s("eu-central-1"));
    assert_eq!(config.profile_names(), ["default", "a"]);
}

#[test]
fn duplicate_key() {
    assert_eq!(
        parse_err("[profile a]\nrole_arn = x\nROLE_ARN = y\n"),
        "~/.aws/config line 3: role_arn is set twice in [profile a] (first on line 2); keep one"
    );
}

#[test]
fn other_sections_are_kept_and_ignored() {
    // aws-vault's TestIniWithDEFAULTHeader: [DEFAULT] is not [default].
    let config = parse(
        "[DEFAULT]\nregion=us-east-1\n[default]\nregion=us-west-2\n[plugins]\ncli_legacy_plugin_path = /x\n\
         [sso-session moon]\nsso_region = moon-2\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:5000\n",
    );
    assert_eq!(config.profile_names(), ["default"]);
    assert_eq!(resolve(&config, "default").target().region, s("us-west-2"));
    let kinds: Vec<SectionKind> = config.sections().iter().map(Section::kind).collect();
    assert_eq!(
        kinds,
        [
            SectionKind::Other,
            SectionKind::Profile,
            SectionKind::Other,
            SectionKind::SsoSession,
            SectionKind::Services
        ]
    );
    assert_eq!(
        config
            .section(SectionKind::SsoSession, "moon")
            .unwrap()
            .get("sso_region"),
        Some("moon-2")
    );
}

#[test]
fn empty_default_is_not_listed() {
    let config = parse("[default]\n\n[profile a]\n[profile b]\n");
    assert_eq!(config.profile_names(), ["a", "b"]);
}

#[test]
fn whitespace_inside_profile_header_is_trimmed() {
    let config = parse("[  profile   spaced  ]\nregion = x\n");
    assert_eq!(config.profile_names(), ["spaced"]);
}

// ---- resolution: aws-vault README and USAGE.md examples ----

const README_ROLES_AND_MFA: &str = "\
[default]
region = us-east-1

[profile jonsmith]
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile foo-readonly]
source_profile = jonsmith
role_arn = arn:aws:iam::22222222222:role/ReadOnly

[profile foo-admin]
source_profile = jonsmith
role_arn = arn:aws:iam::22222222222:role/Administrator
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile bar-role1]
source_profile = jonsmith
role_arn = arn:aws:iam::333333333333:role/Role1
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile bar-role2]
source_profile = bar-role1
role_arn = arn:aws:iam::333333333333:role/Role2
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith
";

#[test]
fn readme_roles_and_mfa_chain_of_three() {
    let config = parse(README_ROLES_AND_MFA);
    let chain = resolve(&config, "bar-role2");
    assert_eq!(names(&chain), ["jonsmith", "bar-role1", "bar-role2"]);
    assert_eq!(chain.to_string(), "jonsmith → bar-role1 → bar-role2");
    assert!(!chain.root().uses_role());
    assert_eq!(
        chain.root().mfa_serial(),
        Some("arn:aws:iam::111111111111:mfa/jonsmith")
    );
    assert_eq!(
        chain.links()[1].role_arn,
        s("arn:aws:iam::333333333333:role/Role1")
    );
    assert!(chain.target().uses_role());
    // [default] region reaches every link.
    assert!(chain
        .links()
        .iter()
        .all(|l| l.region.as_deref() == Some("us-east-1")));
    assert_eq!(
        chain.target().origin("region"),
        Some(&Origin::File {
            section: "default".into(),
            line: 2
        })
    );
}

#[test]
fn readme_role_without_its_own_mfa_serial_does_not_inherit_the_sources() {
    // aws-vault v5+: mfa_serial is per profile, not taken from source_profile.
    let config = parse(README_ROLES_AND_MFA);
    let chain = resolve(&config, "foo-readonly");
    assert_eq!(names(&chain), ["jonsmith", "foo-readonly"]);
    assert_eq!(chain.target().mfa_serial(), None);
    assert!(chain.root().mfa_serial().is_some());
}

#[test]
fn usage_use_case_1_executor() {
    let config = parse(
        "; master creds added with 'aws-vault add my_profile_master'\n\
         [profile my_profile_master]\n\n[profile my_profile_role]\n\
         source_profile=my_profile_master\nrole_arn=xxx\n",
    );
    let chain = resolve(&config, "my_profile_role");
    assert_eq!(names(&chain), ["my_profile_master", "my_profile_role"]);
    assert_eq!(chain.target().role_arn, s("xxx"));
    assert_eq!(
        names(&resolve(&config, "my_profile_master")),
        ["my_profile_master"]
    );
}

#[test]
fn usage_use_case_2_credential_process_master() {
    let config = parse(
        "[profile my_profile_master]\n\
         credential_process = aws-vault export --format=json --no-session my_profile_master\n\n\
         [profile my_profile_role]\nsource_profile=my_profile_master\nrole_arn=xxx\n",
    );
    let chain = resolve(&config, "my_profile_role");
    assert_eq!(
        chain.root().credential_process,
        s("aws-vault export --format=json --no-session my_profile_master")
    );
    assert_eq!(chain.target().credential_process, None);
}

#[test]
fn usage_use_case_3_shared_mfa_session() {
    let config = parse(
        "[profile my_profile_master]\nmfa_serial=mmm\n\
         credential_process = aws-vault export --format=json my_profile_master\n\n\
         [profile my_profile_role]\nsource_profile=my_profile_master\nmfa_serial=mmm\nrole_arn=xxx1\n\n\
         [profile my_profile_role2]\nsource_profile=my_profile_master\nmfa_serial=mmm\nrole_arn=xxx2\n",
    );
    for (name, role) in [("my_profile_role", "xxx1"), ("my_profile_role2", "xxx2")] {
        let chain = resolve(&config, name);
        assert_eq!(chain.root().mfa_serial(), Some("mmm"));
        assert_eq!(chain.target().mfa_serial(), Some("mmm"));
        assert_eq!(chain.target().role_arn, s(role));
    }
}

#[test]
fn usage_use_case_4_sso_and_process_sources() {
    let config = parse(
        "[profile my_profile_using_sso]\nsso_start_url = https://mycompany.awsapps.com/start\n\n\
         [profile my_profile_using_process]\ncredential_process = my-custom-creds-cmd\n",
    );
    let sso = resolve(&config, "my_profile_using_sso").target().clone();
    assert!(sso.uses_sso());
    assert_eq!(
        sso.unsupported().unwrap().to_string(),
        "profile \"my_profile_using_sso\" uses SSO (sso_start_url at \
         ~/.aws/config [profile my_profile_using_sso] line 2), which vault does not support"
    );
    let process = resolve(&config, "my_profile_using_process")
        .target()
        .clone();
    assert_eq!(process.credential_process, s("my-custom-creds-cmd"));
    assert!(process.unsupported().is_none());
}

#[test]
fn usage_include_profile_mixin_style() {
    let config = parse(
        "; The \"common\" profile here operates as a \"config fragment\" rather than a profile\n\
         [profile common]\nregion=eu-west-1\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\n\
         source_profile = root\n\n[profile root]\ninclude_profile = common\n\n\
         [profile order-dev]\ninclude_profile = common\nrole_arn=arn:aws:iam::123456789:role/developers\n\n\
         [profile order-staging-admin]\ninclude_profile = common\n\
         role_arn=arn:aws:iam::123456789:role/administrators\n",
    );
    let chain = resolve(&config, "order-dev");
    assert_eq!(names(&chain), ["root", "order-dev"]);
    let (root, dev) = (chain.root(), chain.target());
    // root includes source_profile = root from common: itself, so no source.
    assert_eq!(root.source_profile, None);
    assert_eq!(root.region, s("eu-west-1"));
    assert_eq!(
        root.mfa_serial(),
        Some("arn:aws:iam::123456789:mfa/johnsmith")
    );
    assert_eq!(root.include_profile, s("common"));
    assert_eq!(
        dev.mfa_serial(),
        Some("arn:aws:iam::123456789:mfa/johnsmith")
    );
    assert_eq!(dev.role_arn, s("arn:aws:iam::123456789:role/developers"));
    assert_eq!(
        dev.origin("mfa_serial"),
        Some(&Origin::File {
            section: "profile common".into(),
            line: 4
        })
    );
    let admin = resolve(&config, "order-staging-admin");
    assert_eq!(names(&admin), ["root", "order-staging-admin"]);
}

#[test]
fn usage_include_profile_parent_style() {
    let config = parse(
        "[profile root]\nregion=eu-west-1\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\n\
         source_profile = root\n\n[profile order-dev]\ninclude_profile = root\n\
         role_arn=arn:aws:iam::123456789:role/developers\n\n[profile order-staging-admin]\n\
         include_profile = root\nrole_arn=arn:aws:iam::123456789:role/administrators\n",
    );
    let chain = resolve(&config, "order-staging-admin");
    assert_eq!(names(&chain), ["root", "order-staging-admin"]);
    assert_eq!(chain.root().source_profile, None);
    assert_eq!(chain.target().source_profile, s("root"));
    assert_eq!(chain.target().region, s("eu-west-1"));
}

#[test]
fn usage_session_tags_and_transitive_session_tags() {
    let config = parse(
        "[profile root]\nregion=eu-west-1\n\n[profile order-dev]\nsource_profile = root\n\
         role_arn=arn:aws:iam::123456789:role/developers\n\
         session_tags = key1=value1,key2=value2,key3=value3\ntransitive_session_tags = key1,key2\n",
    );
    let t = resolve(&config, "order-dev").target().clone();
    let tags: Vec<(&str, &str)> = t
        .session_tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        [("key1", "value1"), ("key2", "value2"), ("key3", "value3")]
    );
    assert_eq!(t.transitive_session_tags, ["key1", "key2"]);
}

#[test]
fn usage_source_identity() {
    let config = parse(
        "[profile root]\nregion=eu-west-1\n\n[profile order-dev]\nsource_profile = root\n\
         role_arn=arn:aws:iam::123456789:role/developers\nsource_identity=your_user_name\n",
    );
    assert_eq!(
        resolve(&config, "order-dev").target().source_identity,
        s("your_user_name")
    );
}

#[test]
fn usage_mfa_process_pass_1password_and_ykman() {
    for process in [
        "pass otp my_aws_mfa",
        "op item get my_aws_mfa --otp",
        "ykman oath accounts code --single arn:aws:iam::123456789012:mfa/jonsmith",
    ] {
        let config = parse(&format!(
            "[profile foo]\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\nmfa_process={process}\n"
        ));
        let p = resolve(&config, "foo").target().clone();
        assert_eq!(p.mfa_process.as_deref(), Some(process));
        assert_eq!(p.mfa_serial(), Some("arn:aws:iam::123456789:mfa/johnsmith"));
    }
}

#[test]
fn usage_multiple_profiles_home_and_work() {
    let config = parse(
        "[default]\nregion = us-east-1\n\n[profile home]\nmfa_serial = arn:aws:iam::111111111111:mfa/home-account\n\n\
         [profile work]\nmfa_serial = arn:aws:iam::111111111111:mfa/work-account\n\
         role_arn = arn:aws:iam::111111111111:role/ReadOnly\n\n[profile work-admin]\n\
         role_arn = arn:aws:iam::111111111111:role/Administrator\nsource_profile = work\n",
    );
    let chain = resolve(&config, "work-admin");
    assert_eq!(names(&chain), ["work", "work-admin"]);
    // work has a role of its own, assumed with its stored keys.
    assert!(chain.root().uses_role());
    assert_eq!(chain.target().mfa_serial(), None);
    assert_eq!(
        config.profile_names(),
        ["default", "home", "work", "work-admin"]
    );
}

#[test]
fn usage_mfa_shared_between_roles() {
    let config = parse(
        "[profile tom]\nmfa_serial = arn:aws:iam::111111111111:mfa/tom\n\n[profile role1]\n\
         source_profile = tom\nrole_arn = arn:aws:iam::22222222222:role/role1\n\
         mfa_serial = arn:aws:iam::111111111111:mfa/tom\n\n[profile role2]\nsource_profile = tom\n\
         role_arn = arn:aws:iam::33333333333:role/role2\nmfa_serial = arn:aws:iam::111111111111:mfa/tom\n",
    );
    for role in ["role1", "role2"] {
        let chain = resolve(&config, role);
        assert_eq!(chain.root().mfa_serial(), chain.target().mfa_serial());
    }
}

#[test]
fn usage_mfa_gotchas_include_profile_carries_mfa_and_source() {
    let config = parse(
        "[profile jon]\nmfa_serial = arn:aws:iam::111111111111:mfa/jon\nsource_profile=jon\n\n\
         [profile role1]\nrole_arn = arn:aws:iam::22222222222:role/role1\ninclude_profile = jon\n\n\
         [profile role2]\nrole_arn = arn:aws:iam::33333333333:role/role2\ninclude_profile = jon\n",
    );
    let chain = resolve(&config, "role2");
    assert_eq!(names(&chain), ["jon", "role2"]);
    assert_eq!(
        chain.target().mfa_serial(),
        Some("arn:aws:iam::111111111111:mfa/jon")
    );
    assert_eq!(chain.root().source_profile, None);
}

#[test]
fn sso_settings_as_the_aws_cli_resolves_them() {
    let config = parse(
        "[sso-session corp]\nsso_start_url = https://corp/start\nsso_region = eu-west-1\n\
         sso_registration_scopes = sso:account:access, other:scope\n\n\
         [profile new]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = Admin\n\n\
         [profile agrees]\nsso_session = corp\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = A\n\n\
         [profile differs]\nsso_session = corp\nsso_start_url = https://other/start\n\
         sso_account_id = 1\nsso_role_name = A\n\n\
         [profile legacy]\nsso_start_url = https://corp/start\nsso_region = us-east-1\n\
         sso_account_id = 2\nsso_role_name = R\n\n[profile plain]\nregion = eu-west-1\n",
    );
    let sso = |name: &str| config.sso(resolve(&config, name).target());
    let new = sso("new").unwrap().unwrap();
    assert_eq!(new.session.as_deref(), Some("corp"));
    assert_eq!(new.start_url, "https://corp/start");
    assert_eq!(new.region, "eu-west-1");
    assert_eq!(
        new.registration_scopes,
        ["sso:account:access", "other:scope"]
    );
    assert_eq!(
        (new.account_id.as_str(), new.role_name.as_str()),
        ("1", "Admin")
    );
    assert!(sso("agrees").unwrap().is_some());
    let e = sso("differs").unwrap_err().to_string();
    assert!(e.contains("its sso_start_url (https://other/start) differs from the one of [sso-session corp] (https://corp/start)"), "{e}");
    let legacy = sso("legacy").unwrap().unwrap();
    assert_eq!(
        (legacy.session, legacy.region.as_str()),
        (None, "us-east-1")
    );
    assert!(legacy.registration_scopes.is_empty());
    assert_eq!(sso("plain").unwrap(), None);
    assert_eq!(
        config.sso_session("corp").unwrap().start_url,
        "https://corp/start"
    );
    assert!(config.sso_session("nope").is_err());
}

#[test]
fn usage_sso_profile_and_sso_session_are_flagged() {
    let config = parse(
        "[profile Administrator-123456789012]\nsso_start_url=https://aws-sso-portal.awsapps.com/start\n\
         sso_region=eu-west-1\nsso_account_id=123456789012\nsso_role_name=Administrator\n\n\
         [profile with-sso-session]\nsso_session = moon-sso\nsso_account_id=123456\n\
         region = moon-1 # Different from sso region\n\n[sso-session moon-sso]\n\
         sso_start_url = https://d-123456789.example.com/start\nsso_region = moon-2\n",
    );
    let admin = resolve(&config, "Administrator-123456789012")
        .target()
        .clone();
    assert_eq!(admin.sso.len(), 4);
    let with_session = resolve(&config, "with-sso-session").target().clone();
    assert!(with_session.uses_sso());
    assert_eq!(with_session.region, s("moon-1"));
    let err = with_session.unsupported().unwrap();
    assert!(
        err.to_string().contains("uses SSO (sso_session at"),
        "{err}"
    );
    assert!(err
        .hint()
        .unwrap()
        .contains("aws sso login --profile with-sso-session"));
}

#[test]
fn usage_web_identity_is_flagged() {
    let config = parse(
        "[profile role1]\nrole_arn = arn:aws:iam::22222222222:role/role1\n\
         web_identity_token_file = /path/to/token.txt\n\n[profile role2]\n\
         role_arn = arn:aws:iam::33333333333:role/role2\nweb_identity_token_process = oidccli raw\n",
    );
    for name in ["role1", "role2"] {
        let err = resolve(&config, name)
            .target()
            .unsupported()
            .unwrap()
            .to_string();
        assert!(err.contains("web identity federation"), "{err}");
    }
}

#[test]
fn usage_credential_process_invoking_vault() {
    let config = parse(
        "[profile home]\ncredential_process = aws-vault export --format=json home\n\n\
         [profile work]\nmfa_serial = arn:aws:iam::123456789012:mfa/jonsmith\n\
         credential_process = aws-vault --prompt=osascript export --format=json work\n",
    );
    assert_eq!(
        resolve(&config, "work").target().credential_process,
        s("aws-vault --prompt=osascript export --format=json work")
    );
    let config = parse(
        "[profile jon]\ncredential_process = aws-vault export --no-session --format=json jon\n\n\
         [profile work]\nmfa_serial = arn:aws:iam::123456789012:mfa/jonsmith\n\
         role_arn = arn:aws:iam::33333333333:role/role2\nsource_profile = jon\n",
    );
    assert_eq!(names(&resolve(&config, "work")), ["jon", "work"]);
}

#[test]
fn usage_docker_source_profile_known_only_to_the_store() {
    let text = "[profile base-role]\nsource_profile=myprofile\n\
                role_arn=arn:aws:iam::222222222222:role/aws-vault-test\n\
                mfa_serial=arn:aws:iam::222222222222:mfa/<your.aws.username>\n";
    let config = parse(text);
    assert_eq!(
        config
            .resolve("base-role", &no_env)
            .unwrap_err()
            .to_string(),
        "~/.aws/config line 2: source_profile = myprofile in [profile base-role] names a \
         profile that is not in the file; its profiles are base-role"
    );
    let chain = config
        .resolve_with("base-role", &no_env, &|n| n == "myprofile")
        .unwrap();
    assert_eq!(names(&chain), ["myprofile", "base-role"]);
    assert!(!chain.root().in_file);
}

#[test]
fn quick_start_profile_with_stored_keys_and_no_config() {
    let config = parse("");
    assert!(config.resolve("jonsmith", &no_env).is_err());
    let chain = config
        .resolve_with("jonsmith", &no_env, &|n| n == "jonsmith")
        .unwrap();
    assert_eq!(names(&chain), ["jonsmith"]);
}

#[test]
fn stored_keys_end_the_chain_even_with_a_source_profile() {
    let config = parse("[profile a]\nsource_profile = b\nrole_arn = r\n[profile b]\n");
    let chain = config.resolve_with("a", &no_env, &|n| n == "a").unwrap();
    assert_eq!(names(&chain), ["a"]);
    assert!(chain.root().uses_role());
}

// ---- inheritance ----

#[test]
fn default_fills_unset_fields_and_own_values_win() {
    let config = parse(
        "[default]\nregion = us-east-1\nmfa_serial = m-default\nvault_backend = file\n\
         [profile a]\nregion = eu-west-1\n",
    );
    let a = resolve(&config, "a").target().clone();
    assert_eq!(a.region, s("eu-west-1"));
    assert_eq!(a.mfa_serial(), Some("m-default"));
    assert_eq!(a.vault_value("vault_backend"), Some("file"));
}

#[test]
fn empty_value_counts_as_unset_and_inherits() {
    let config = parse("[default]\nregion = us-east-1\n[profile a]\nregion =\n");
    assert_eq!(resolve(&config, "a").target().region, s("us-east-1"));
}

#[test]
fn include_profile_replaces_default_but_default_still_comes_last() {
    let config = parse(
        "[default]\nregion = d\nexternal_id = from-default\n\
         [profile common]\nregion = c\n[profile a]\ninclude_profile = common\n",
    );
    let a = resolve(&config, "a").target().clone();
    assert_eq!(a.region, s("c"));
    assert_eq!(a.external_id, s("from-default"));
}

#[test]
fn include_profile_chains_through_several_fragments() {
    let config = parse(
        "[profile x]\nregion = x\n[profile y]\ninclude_profile = x\nmfa_serial = y\n\
         [profile a]\ninclude_profile = y\n",
    );
    let a = resolve(&config, "a").target().clone();
    assert_eq!((a.region, a.mfa_serial), (s("x"), s("y")));
}

#[test]
fn default_with_include_profile_is_not_a_loop() {
    let config =
        parse("[default]\ninclude_profile = common\n[profile common]\nregion = r\n[profile a]\n");
    assert_eq!(resolve(&config, "a").target().region, s("r"));
    assert_eq!(resolve(&config, "default").target().region, s("r"));
}

#[test]
fn inherited_source_profile_naming_itself_means_no_source() {
    // aws-vault's TestLoadedProfileDoesntReferToItself, plus the
    // [default] case that makes the rule necessary.
    let config = parse("[profile foo]\nsource_profile=foo\n");
    assert_eq!(resolve(&config, "foo").target().source_profile, None);
    let config =
        parse("[default]\nsource_profile = base\n[profile base]\n[profile app]\nrole_arn = r\n");
    assert_eq!(names(&resolve(&config, "app")), ["base", "app"]);
    assert_eq!(names(&resolve(&config, "base")), ["base"]);
}

#[test]
fn source_profile_can_refer_to_included_parent() {
    // aws-vault's TestSourceProfileCanReferToParent.
    let config =
        parse("[profile root]\n\n[profile foo]\ninclude_profile=root\nsource_profile=root\n");
    assert_eq!(names(&resolve(&config, "foo")), ["root", "foo"]);
}

#[test]
fn each_link_resolves_its_own_inheritance() {
    let config = parse(
        "[default]\nregion = d\n[profile frag]\nregion = f\n\
         [profile base]\ninclude_profile = frag\n[profile app]\nsource_profile = base\nrole_arn = r\n",
    );
    let chain = resolve(&config, "app");
    assert_eq!(chain.root().region, s("f"));
    assert_eq!(chain.target().region, s("d"));
}

#[test]
fn tags_apply_per_link() {
    // aws-vault's TestSessionTaggingFromEnvironmentChainedRoles.
    let config = parse(
        "[profile base]\n\n[profile interim]\nsession_tags=tag1=value1\ntransitive_session_tags=tag2\n\
         source_profile = base\n\n[profile target]\nsession_tags=tagA=valueA\n\
         transitive_session_tags=tagB\nsource_profile = interim\n",
    );
    let env = env_of(&[
        ("AWS_SESSION_TAGS", "tagI=valI"),
        ("AWS_TRANSITIVE_TAGS", " tagII"),
    ]);
    let chain = config.resolve("target", &env).unwrap();
    let [base, interim, target] = chain.links() else {
        panic!("{chain}")
    };
    assert_eq!(
        target.session_tags.get("tagI").map(String::as_str),
        Some("valI")
    );
    assert_eq!(target.transitive_session_tags, ["tagII"]);
    assert_eq!(
        interim.session_tags.get("tag1").map(String::as_str),
        Some("value1")
    );
    assert_eq!(interim.transitive_session_tags, ["tag2"]);
    assert!(base.session_tags.is_empty() && base.transitive_session_tags.is_empty());
}

#[test]
fn session_tags_parse_like_aws_vault() {
    let ok = |raw: &str| parse_session_tags(raw).unwrap();
    assert_eq!(ok("tag1=value1").len(), 1);
    let spaced = ok(" tagA = valueA ,  tagB  =  valueB  ,  tagC   =   valueC  ");
    assert_eq!(spaced.get("tagB").map(String::as_str), Some("valueB"));
    assert_eq!(ok("k=a=b").get("k").map(String::as_str), Some("a=b"));
    for bad in [
        "tag1=value1,",
        "tagA=valueA,tagB",
        "tagOne,tagTwo=valueTwo",
        "=v",
        "a=1,A=2",
    ] {
        assert!(parse_session_tags(bad).is_err(), "{bad}");
    }
}

#[test]
fn malformed_session_tags_name_the_line_or_variable() {
    let config = parse("[profile a]\nsession_tags = a=1,b\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "~/.aws/config line 2: session_tags in [profile a] must be Key1=Value1,Key2=Value2, found \"a=1,b\""
    );
    let env = env_of(&[("AWS_SESSION_TAGS", "x")]);
    assert_eq!(
        config.resolve("a", &env).unwrap_err().to_string(),
        "$AWS_SESSION_TAGS must be Key1=Value1,Key2=Value2, found \"x\""
    );
}

#[test]
fn transitive_tags_drop_empty_items() {
    let config = parse("[profile a]\ntransitive_session_tags = ,tagA, ,tagB,\n");
    assert_eq!(
        resolve(&config, "a").target().transitive_session_tags,
        ["tagA", "tagB"]
    );
}

#[test]
fn duration_seconds_is_validated_where_it_is_set() {
    let config = parse("[default]\nduration_seconds = 60\n[profile a]\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "~/.aws/config line 2: duration_seconds in [default] must be a number of seconds from \
         900 to 129600 (15 minutes to 36 hours), found \"60\""
    );
    for bad in ["1h", "-1", "129601", "899", ""] {
        let text = format!("[profile a]\nduration_seconds = {bad} \n");
        let result = parse(&text).resolve("a", &no_env);
        if bad.is_empty() {
            assert_eq!(result.unwrap().target().duration_seconds, None);
        } else {
            assert!(result.is_err(), "{bad}");
        }
    }
    for good in [900, 3600, 129_600] {
        let config = parse(&format!("[profile a]\nduration_seconds = {good}\n"));
        assert_eq!(resolve(&config, "a").target().duration_seconds, Some(good));
    }
}

#[test]
fn vault_keys_are_collected_with_their_prefix() {
    let config =
        parse("[profile a]\nvault_backend = file\nvault_token_serial = 12345678\nregion = r\n");
    let a = resolve(&config, "a").target().clone();
    let keys: Vec<&str> = a.vault.keys().map(String::as_str).collect();
    assert_eq!(keys, ["vault_backend", "vault_token_serial"]);
    assert_eq!(a.vault_value("vault_token_serial"), Some("12345678"));
}

#[test]
fn credential_source_is_flagged() {
    let config = parse("[profile a]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\n");
    let err = resolve(&config, "a")
        .target()
        .unsupported()
        .unwrap()
        .to_string();
    assert!(
        err.contains("credential_source at ~/.aws/config [profile a] line 3"),
        "{err}"
    );
}

// ---- loops and missing profiles ----

#[test]
fn source_profile_loop_is_named() {
    let config = parse("[profile a]\nsource_profile = b\n[profile b]\nsource_profile = a\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "source_profile loop in ~/.aws/config: a → b → a"
    );
}

#[test]
fn source_profile_loop_not_through_the_target() {
    let config = parse(
        "[profile t]\nsource_profile = a\n[profile a]\nsource_profile = b\n\
         [profile b]\nsource_profile = c\n[profile c]\nsource_profile = a\n",
    );
    let err = config.resolve("t", &no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "source_profile loop in ~/.aws/config: a → b → c → a"
    );
    assert!(err.hint().is_some());
}

#[test]
fn include_profile_loop_is_named() {
    let config = parse("[profile a]\ninclude_profile = b\n[profile b]\ninclude_profile = a\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "include_profile loop in ~/.aws/config: a → b → a"
    );
    let config = parse("[profile a]\ninclude_profile = a\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "include_profile loop in ~/.aws/config: a → a"
    );
}

#[test]
fn include_loop_through_default() {
    let config = parse("[default]\ninclude_profile = a\n[profile a]\ninclude_profile = default\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "include_profile loop in ~/.aws/config: a → default → a"
    );
}

#[test]
fn missing_include_profile_is_named() {
    let config = parse("[profile a]\n\ninclude_profile = comon\n[profile common]\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "~/.aws/config line 3: include_profile = comon in [profile a] names a profile that is \
         not in the file; did you mean \"common\"?"
    );
}

#[test]
fn missing_include_profile_is_an_error_even_with_stored_keys() {
    let config = parse("[profile a]\ninclude_profile = frag\n");
    assert!(config.resolve_with("a", &no_env, &|_| true).is_err());
}

#[test]
fn missing_source_profile_inherited_from_default_names_default_line() {
    let config = parse("[default]\nregion = r\nsource_profile = nobody\n[profile a]\n");
    assert_eq!(
        config.resolve("a", &no_env).unwrap_err().to_string(),
        "~/.aws/config line 3: source_profile = nobody in [default] names a profile that is \
         not in the file; its profiles are default, a"
    );
}

#[test]
fn unknown_profile_suggests_nearby_names() {
    let config = parse(README_ROLES_AND_MFA);
    let err = config.resolve("foo-admn", &no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "profile \"foo-admn\" is not in ~/.aws/config; did you mean \"foo-admin\"?"
    );
    assert_eq!(
        err.hint().unwrap(),
        "add a [profile foo-admn] section to ~/.aws/config, or store keys for it with `vault add foo-admn`"
    );
    let err = config.resolve("bar", &no_env).unwrap_err().to_string();
    assert!(
        err.ends_with("did you mean \"bar-role1\" or \"bar-role2\"?"),
        "{err}"
    );
    let err = config
        .resolve("zzzzzzzzzzzz", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "its profiles are default, jonsmith, foo-readonly, foo-admin, bar-role1, bar-role2"
        ),
        "{err}"
    );
}

#[test]
fn unknown_profile_written_without_profile_prefix_is_pointed_out() {
    let config = parse("[default]\n[work]\nregion = r\n");
    assert_eq!(
        config.resolve("work", &no_env).unwrap_err().to_string(),
        "profile \"work\" is not in ~/.aws/config; line 2 has [work], but in this file a \
         profile's header is [profile work]"
    );
}

#[test]
fn default_may_be_missing() {
    let config = parse("[profile a]\nregion = r\n");
    let chain = resolve(&config, "default");
    assert_eq!(chain.target().region, None);
    assert!(!chain.target().in_file);
}

// ---- environment ----

#[test]
fn env_region_beats_the_file_for_every_link() {
    let config = parse(
        "[profile base]\nregion = eu-west-1\n[profile app]\nsource_profile = base\nrole_arn = r\n",
    );
    let env = env_of(&[("AWS_DEFAULT_REGION", "ap-south-1")]);
    let chain = config.resolve("app", &env).unwrap();
    assert!(chain
        .links()
        .iter()
        .all(|l| l.region.as_deref() == Some("ap-south-1")));
    assert_eq!(
        chain.root().origin("region"),
        Some(&Origin::Env("AWS_DEFAULT_REGION"))
    );
    let env = env_of(&[
        ("AWS_DEFAULT_REGION", "ap-south-1"),
        ("AWS_REGION", "us-west-1"),
    ]);
    assert_eq!(
        config.resolve("app", &env).unwrap().target().region,
        s("us-west-1")
    );
    let env = env_of(&[("AWS_REGION", "")]);
    assert_eq!(
        config.resolve("app", &env).unwrap().root().region,
        s("eu-west-1")
    );
}

#[test]
fn env_mfa_serial_applies_to_every_link() {
    let config = parse(
        "[profile base]\n[profile app]\nsource_profile = base\nrole_arn = r\nmfa_serial = file\n",
    );
    let env = env_of(&[("AWS_MFA_SERIAL", "arn:env")]);
    let chain = config.resolve("app", &env).unwrap();
    assert_eq!(chain.root().mfa_serial(), Some("arn:env"));
    assert_eq!(chain.target().mfa_serial(), Some("arn:env"));
}

#[test]
fn env_role_settings_apply_to_the_target_only() {
    let config = parse(
        "[profile base]\nrole_arn = base-role\nrole_session_name = base-session\n\
         [profile app]\nsource_profile = base\nrole_arn = app-role\n",
    );
    let env = env_of(&[
        ("AWS_ROLE_ARN", "env-role"),
        ("AWS_ROLE_SESSION_NAME", "env-session"),
        ("AWS_SOURCE_IDENTITY", "me"),
    ]);
    let chain = config.resolve("app", &env).unwrap();
    assert_eq!(chain.target().role_arn, s("env-role"));
    assert_eq!(chain.target().role_session_name, s("env-session"));
    assert_eq!(chain.target().source_identity, s("me"));
    assert_eq!(chain.root().role_arn, s("base-role"));
    assert_eq!(chain.root().role_session_name, s("base-session"));
    assert_eq!(chain.root().source_identity, None);
}

#[test]
fn role_session_name_from_file() {
    let config = parse("[profile a]\nrole_arn = r\nrole_session_name = alice\nexternal_id = xyz\n");
    let a = resolve(&config, "a").target().clone();
    assert_eq!((a.role_session_name, a.external_id), (s("alice"), s("xyz")));
}

#[test]
fn sts_endpoint_precedence() {
    let config = parse(
        "[profile a]\nendpoint_url = http://profile\n[profile b]\nendpoint_url = http://profile\n\
         services = local\n[services local]\nsts =\n  endpoint_url = http://services\n",
    );
    assert_eq!(resolve(&config, "a").sts_endpoint(), Some("http://profile"));
    assert_eq!(
        resolve(&config, "b").sts_endpoint(),
        Some("http://services")
    );
    let env = env_of(&[("AWS_ENDPOINT_URL", "http://global")]);
    assert_eq!(
        config.resolve("b", &env).unwrap().sts_endpoint(),
        Some("http://global")
    );
    let env = env_of(&[
        ("AWS_ENDPOINT_URL", "http://global"),
        ("AWS_ENDPOINT_URL_STS", "http://sts"),
    ]);
    let chain = config.resolve("b", &env).unwrap();
    assert_eq!(chain.sts_endpoint(), Some("http://sts"));
    assert_eq!(
        chain.target().origin("sts_endpoint"),
        Some(&Origin::Env("AWS_ENDPOINT_URL_STS"))
    );
    assert_eq!(resolve(&parse("[profile c]\n"), "c").sts_endpoint(), None);
}

#[test]
fn profile_name_precedence() {
    let env = env_of(&[("AWS_PROFILE", "from-env")]);
    assert_eq!(profile_name(Some("arg"), &env), "arg");
    assert_eq!(profile_name(None, &env), "from-env");
    assert_eq!(profile_name(None, &no_env), "default");
    assert_eq!(
        profile_name(None, &env_of(&[("AWS_PROFILE", "")])),
        "default"
    );
}

#[test]
fn default_path_precedence() {
    let env = env_of(&[("AWS_CONFIG_FILE", "/etc/aws"), ("HOME", "/home/u")]);
    assert_eq!(default_path_from(&env), PathBuf::from("/etc/aws"));
    let env = env_of(&[("AWS_CONFIG_FILE", "~/cfg"), ("HOME", "/home/u")]);
    assert_eq!(default_path_from(&env), PathBuf::from("/home/u/cfg"));
    let env = env_of(&[("HOME", "/home/u")]);
    assert_eq!(
        default_path_from(&env),
        PathBuf::from("/home/u/.aws/config")
    );
}

#[test]
fn display_path_abbreviates_home() {
    let home = Path::new("/home/u");
    assert_eq!(
        display_path(Path::new("/home/u/.aws/config"), Some(home)),
        "~/.aws/config"
    );
    assert_eq!(display_path(Path::new("/etc/aws"), Some(home)), "/etc/aws");
}

// ---- editing ----

#[test]
fn set_value_edits_in_place_keeping_comments_and_order() {
    let text = "# keep me\n[default]\nregion=us-east-1\n\n[profile a]\nmfa_serial=old # my key\nrole_arn = r\n";
    let mut config = parse(text);
    config.set_value("a", "mfa_serial", "arn:new").unwrap();
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "# keep me\n[default]\nregion=us-east-1\n\n[profile a]\nmfa_serial=arn:new # my key\nrole_arn = r\n"
    );
}

#[test]
fn set_value_adds_key_at_end_of_section_before_next_header_comment() {
    let text = "[profile a]\nregion = r\n\n# about b\n[profile b]\nregion = q\n";
    let mut config = parse(text);
    config.set_value("a", "vault_token_serial", "123").unwrap();
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "[profile a]\nregion = r\nvault_token_serial = 123\n\n# about b\n[profile b]\nregion = q\n"
    );
}

#[test]
fn set_value_after_nested_block_and_in_empty_section() {
    let mut config = parse("[profile a]\ns3 =\n  max = 1\n[profile b]");
    config.set_value("a", "region", "r").unwrap();
    config.set_value("b", "region", "q").unwrap();
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "[profile a]\ns3 =\n  max = 1\nregion = r\n[profile b]\nregion = q\n"
    );
}

#[test]
fn set_value_appends_a_section_with_the_files_line_endings_and_bom() {
    let mut config = parse("\u{feff}[default]\r\nregion = r\r\n");
    config.set_value("new", "mfa_serial", "arn:x").unwrap();
    config.set_value("default", "output", "json").unwrap();
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "\u{feff}[default]\r\nregion = r\r\noutput = json\r\n\r\n[profile new]\r\nmfa_serial = arn:x\r\n"
    );
    let mut empty = parse("");
    empty.set_value("default", "region", "r").unwrap();
    assert_eq!(
        String::from_utf8(empty.to_bytes()).unwrap(),
        "[default]\nregion = r\n"
    );
}

#[test]
fn set_value_replaces_a_continued_value() {
    let mut config = parse("[profile a]\nregion = x\n  y\nrole_arn = r\n");
    config.set_value("a", "REGION", "z").unwrap();
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "[profile a]\nregion = z\nrole_arn = r\n"
    );
}

#[test]
fn set_value_refuses_what_would_not_read_back() {
    let mut config = parse("[profile a]\n");
    for (profile, key, value) in [
        ("a", "k", "x #y"),
        ("a", "k", " x"),
        ("a", "k", "x\ny"),
        ("a", "k", ""),
        ("a", "a b", "x"),
        ("a]", "k", "x"),
        ("", "k", "x"),
    ] {
        let err = config.set_value(profile, key, value).unwrap_err();
        assert!(
            matches!(err, ConfigError::Edit { .. }),
            "{profile:?} {key:?} {value:?}"
        );
    }
    assert_eq!(
        String::from_utf8(config.to_bytes()).unwrap(),
        "[profile a]\n"
    );
}

#[test]
fn save_writes_atomically_with_the_same_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, "[profile a]\nregion = r\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let mut config = ConfigFile::load(&path).unwrap();
    config.set_value("a", "mfa_serial", "arn:x").unwrap();
    config.save().unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "[profile a]\nregion = r\nmfa_serial = arn:x\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
    let leftovers = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1);
    // A second edit after a save works from the saved state.
    config.set_value("a", "region", "q").unwrap();
    config.save().unwrap();
    assert!(fs::read_to_string(&path).unwrap().contains("region = q"));
}

#[test]
fn save_creates_a_missing_file_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".aws").join("config");
    let mut config = ConfigFile::load(&path).unwrap();
    config.set_value("a", "mfa_serial", "arn:x").unwrap();
    config.save().unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "[profile a]\nmfa_serial = arn:x\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn save_through_a_symlink_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles-config");
    let link = dir.path().join("config");
    fs::write(&real, "[profile a]\n").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut config = ConfigFile::load(&link).unwrap();
    config.set_value("a", "region", "r").unwrap();
    config.save().unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(&real).unwrap(),
        "[profile a]\nregion = r\n"
    );
}

#[test]
fn save_refuses_when_the_file_changed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, "[profile a]\n").unwrap();
    let mut config = ConfigFile::load(&path).unwrap();
    fs::write(&path, "[profile a]\nregion = someone-else\n").unwrap();
    config.set_value("a", "region", "r").unwrap();
    let err = config.save().unwrap_err();
    assert!(
        err.to_string().ends_with("it changed since vault read it"),
        "{err}"
    );
    assert!(fs::read_to_string(&path).unwrap().contains("someone-else"));
}

#[test]
fn parsed_text_cannot_be_saved() {
    let mut config = parse("[profile a]\n");
    assert!(matches!(config.save(), Err(ConfigError::Edit { .. })));
}

// ---- never panic, never hang ----

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(text: &str, rng: &mut Rng) {
    let Ok(mut config) = ConfigFile::parse(text, FILE) else {
        return;
    };
    let mut names: Vec<String> = config
        .profile_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(["default".to_owned(), "nope".to_owned(), "a".to_owned()]);
    let env = env_of(&[
        ("AWS_REGION", "r"),
        ("AWS_SESSION_TAGS", "k=v"),
        ("AWS_ENDPOINT_URL", "http://x"),
    ]);
    for name in &names {
        let strict = config.resolve(name, &no_env);
        let lenient = config.resolve_with(name, &env, &|n| n.len() % 2 == 0);
        for chain in [strict, lenient].into_iter().flatten() {
            let _ = chain.to_string();
            let _ = chain
                .target()
                .unsupported()
                .map(|e| (e.to_string(), e.hint()));
            let _ = chain.sts_endpoint();
        }
    }
    let name = names[rng.below(names.len())].clone();
    let keys = [
        "region",
        "mfa_serial",
        "include_profile",
        "source_profile",
        "s3",
        "vault_x",
    ];
    let values = ["a", "default", "b", "x#y", "900"];
    let key = keys[rng.below(keys.len())];
    let value = values[rng.below(values.len())];
    if config.set_value(&name, key, value).is_ok() {
        let reread = ConfigFile::parse(std::str::from_utf8(&config.to_bytes()).unwrap(), FILE);
        assert!(
            reread.is_ok(),
            "edited text no longer parses: {:?}",
            config.to_bytes()
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes), &mut rng);
    }
}

#[test]
fn random_config_shaped_text_never_panics_or_hangs() {
    const PIECES: &[&str] = &[
        "[default]",
        "[profile a]",
        "[profile b]",
        "[profile c]",
        "[sso-session s]",
        "[services x]",
        "[",
        "]",
        "\n",
        "\r\n",
        "\n  ",
        " ",
        "=",
        "#",
        ";",
        "a",
        "b",
        "c",
        "default",
        "source_profile = ",
        "include_profile = ",
        "region = ",
        "duration_seconds = 3600",
        "session_tags = a=1",
        "sts =\n  endpoint_url = u",
        "services = x",
        "\u{feff}",
        "é",
    ];
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let text: String = (0..rng.below(40))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect();
        exercise(&text, &mut rng);
    }
}
