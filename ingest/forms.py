"""Forms for uploading documents."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from ingest.filetypes import ACCEPTED_EXTENSIONS, BY_EXTENSION
from kb.models import KnowledgeBase


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files at once (Django's documented recipe).

    Empty files pass here: Django's "The submitted file is empty." would reject the
    whole batch without naming the file, so ``document_create`` refuses each one by
    name and the rest of the batch is stored.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ",".join(BY_EXTENSION)}))
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single_file_clean = super().clean
        if isinstance(data, list | tuple):
            return [single_file_clean(item, initial) for item in data]
        return [single_file_clean(data, initial)]


class KnowledgeBaseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.account} / {obj.name}"


class DocumentUploadForm(forms.Form):
    knowledge_base = KnowledgeBaseChoiceField(queryset=KnowledgeBase.objects.none())
    uploads = MultipleFileField(
        label="Files",
        help_text=f"Select one or more files ({ACCEPTED_EXTENSIONS}); "
        f"up to {settings.CAIRN_MAX_UPLOAD_FILES} files of {settings.CAIRN_MAX_UPLOAD_MB} MB each.",
    )

    def __init__(self, *args: Any, knowledge_bases: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["knowledge_base"]
        if not isinstance(field, forms.ModelChoiceField):  # narrows the type for mypy
            raise TypeError("knowledge_base must be a ModelChoiceField")
        field.queryset = knowledge_bases.select_related("account")

    def clean_uploads(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data["uploads"]
        if len(files) > settings.CAIRN_MAX_UPLOAD_FILES:
            raise forms.ValidationError(
                f"{len(files)} files selected; at most {settings.CAIRN_MAX_UPLOAD_FILES} "
                "can be uploaded at once."
            )
        return files
