//! `completions` for each shell and `man` (to stdout and to a directory): generated from the
//! command tree, nothing to connect to.

use super::*;

/// Shell completions and man pages come from the command tree; nothing to connect to.
#[tokio::test]
async fn completions_and_man_pages() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef campaign-control"),
        ("fish", "complete -c campaign-control"),
    ] {
        let r = cli(&["completions", shell]).await.ok();
        assert!(r.stdout.contains(needle), "{shell}: {}", r.stdout);
        assert!(r.stdout.contains("all-running"), "{shell} lacks a flag");
    }
    let man = cli(&["man"]).await.ok().stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH campaign-control"),
        "{man}"
    );
    assert!(man.contains("campaign\\-control"), "{man}");
    let dir = std::env::temp_dir().join(unique("man"));
    let r = cli(&["man", "--dir", &dir.to_string_lossy()]).await.ok();
    assert!(r.stdout.contains("wrote"), "{}", r.stdout);
    for page in [
        "campaign-control.1",
        "campaign-control-campaign.1",
        "campaign-control-queue-drain.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A directory that cannot be created: exit 1 with the path.
    cli(&["man", "--dir", "/proc/nope/man"])
        .await
        .fails(1, "/proc/nope/man");
}
