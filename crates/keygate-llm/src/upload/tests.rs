use super::*;

const BOUNDARY: &str = "kgtest";

fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: audio/wav\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn limits(file: usize) -> UploadLimits {
    UploadLimits {
        file,
        held: file,
        idle: Duration::from_secs(5),
    }
}

async fn read(body: Vec<u8>, limit: usize) -> Result<Upload, UploadError> {
    read_within(body, limits(limit)).await
}

async fn read_within(body: Vec<u8>, limits: UploadLimits) -> Result<Upload, UploadError> {
    // In small pieces, each after a pause, as a network delivers it.
    let chunks: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), |mut chunks| async move {
        tokio::task::yield_now().await;
        let chunk = chunks.next()?;
        Some((Ok::<_, std::io::Error>(chunk), chunks))
    });
    Upload::read(
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        stream,
        limits,
    )
    .await
}

async fn sent(upload: &Upload, model: &str) -> Vec<u8> {
    let body = upload.take_body(model).unwrap();
    body.read_all().await.unwrap().to_vec()
}

/// The parts of the body sent for `upload`, as (name, content).
async fn parts(upload: &Upload, body: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]);
    let boundary = multer::parse_boundary(upload.content_type()).unwrap();
    let mut multipart = Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(field) = multipart.next_field().await.unwrap() {
        let name = field.name().unwrap_or_default().to_owned();
        out.push((name, field.bytes().await.unwrap().to_vec()));
    }
    out
}

#[tokio::test]
async fn the_model_is_rewritten_and_everything_else_kept_in_order() {
    let audio: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    for order in [
        vec![
            ("model", None, &b"whisper"[..]),
            ("file", Some("a.wav"), &audio[..]),
        ],
        vec![
            ("file", Some("a.wav"), &audio[..]),
            ("model", None, &b"whisper"[..]),
        ],
    ] {
        let mut fields = vec![("stream", None, &b"true"[..])];
        fields.extend(order);
        fields.push(("language", None, b"fr"));
        let upload = read(form(&fields), 1 << 20).await.unwrap();
        assert_eq!(upload.model, "whisper");
        assert!(upload.stream);
        let got = parts(&upload, sent(&upload, "whisper-1").await).await;
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<&str> = fields.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, expected);
        for (name, data) in &got {
            match name.as_str() {
                "model" => assert_eq!(data, b"whisper-1"),
                "file" => assert_eq!(data, &audio),
                "language" => assert_eq!(data, b"fr"),
                _ => assert_eq!(data, b"true"),
            }
        }
        assert!(upload.take_body("x").is_none(), "an upload is sent once");
    }
}

#[tokio::test]
async fn bad_forms_are_refused_with_the_field_named() {
    let audio = [1u8; 100];
    let err = read(form(&[("file", Some("a.wav"), &audio)]), 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("model"));
    let err = read(form(&[("model", None, b"m")]), 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("file"));
    let err = read(
        form(&[
            ("model", None, b"m"),
            ("model", None, b"n"),
            ("file", Some("a"), &audio),
        ]),
        1 << 20,
    )
    .await
    .unwrap_err();
    assert_eq!(err.param(), Some("model"));
    let big = vec![0u8; 5000];
    let err = read(
        form(&[("file", Some("a.wav"), &big), ("model", None, b"m")]),
        1000,
    )
    .await
    .unwrap_err();
    assert_eq!(err, UploadError::TooLarge { limit: 1000 });
    let err = Upload::read(
        "application/json",
        futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::new())]),
        limits(1000),
    )
    .await
    .unwrap_err();
    assert_eq!(err, UploadError::NotMultipart);
    let err = read(b"--kgtest\r\nnonsense".to_vec(), 1000)
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("body"));
}

#[tokio::test]
async fn a_streamed_file_past_the_limit_breaks_the_body_and_says_so() {
    let big = vec![0u8; 5000];
    let upload = read(
        form(&[("model", None, b"m"), ("file", Some("a.wav"), &big)]),
        2000,
    )
    .await
    .unwrap();
    let body = upload.take_body("m").unwrap().read_all().await;
    assert!(body.is_err());
    assert_eq!(upload.fault(), Some(UploadFault::TooLarge { limit: 2000 }));
}

#[tokio::test]
async fn later_parts_cannot_change_what_was_read() {
    let audio = [1u8; 100];
    for (late, reason) in [
        ("model", "`model` given twice"),
        ("stream", "`stream` must come before the file"),
    ] {
        let upload = read(
            form(&[
                ("model", None, b"m"),
                ("file", Some("a.wav"), &audio),
                (late, None, b"x"),
            ]),
            1 << 20,
        )
        .await
        .unwrap();
        assert!(upload.take_body("m").unwrap().read_all().await.is_err());
        assert_eq!(upload.fault(), Some(UploadFault::Malformed(reason)));
    }
    // A name keygate cannot read is refused, not passed on for another parser to read.
    let odd = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; NAME=\"model\"\r\n\r\nm\r\n--{BOUNDARY}--\r\n"
    );
    let err = read(odd.into_bytes(), 1 << 20).await.unwrap_err();
    assert_eq!(err.param(), Some("body"));
}

#[tokio::test]
async fn part_headers_are_written_from_what_was_read() {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\nX-Odd: 1\r\n\r\nm\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--{BOUNDARY}--\r\n"
    );
    let upload = read(body.into_bytes(), 1 << 20).await.unwrap();
    assert!(
        !upload.content_type().contains(BOUNDARY),
        "keygate's own boundary"
    );
    let sent = String::from_utf8(sent(&upload, "whisper-1").await).unwrap();
    assert!(!sent.contains("X-Odd"), "{sent}");
    assert!(
        sent.contains("filename=\"a b.wav\"\r\nContent-Type: audio/wav\r\n"),
        "{sent}"
    );
    assert!(upload.taken());
    assert_eq!(upload.file_bytes(), 4);
}

#[tokio::test]
async fn a_large_file_before_the_model_is_refused_early() {
    let big = vec![0u8; 5000];
    let err = read_within(
        form(&[("file", Some("a.wav"), &big), ("model", None, b"m")]),
        UploadLimits {
            file: 1 << 20,
            held: 1000,
            idle: Duration::from_secs(5),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.param(), Some("model"));
}
