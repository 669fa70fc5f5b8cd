import Foundation

/// Whether a licence grants a right: outright, not at all, or only under conditions spelt out
/// in the entry's note.
public enum Grant: String, Sendable, Codable, CustomStringConvertible {
    case yes, no, conditional
    public var description: String { rawValue }
}

/// The structured terms of one model licence, as far as a deployment decision needs them.
/// Plain-words summaries for people, not legal advice: every entry names its source text and
/// says where the text is open to interpretation (`ambiguity`).
public struct LicenseTerms: Sendable, Equatable {
    /// Catalogue id (lowercase): "apache-2.0", "llama3.2", "gemma", … or "unknown".
    public let id: String
    public let name: String
    /// The SPDX identifier when SPDX lists the licence (CycloneDX `license.id` needs one).
    public let spdx: String?
    /// Other spellings seen in GGUF `general.license`, model cards and SPDX, normalised to `id`.
    public let aliases: [String]
    /// OSI-approved open-source licence (for weights this is rare).
    public let osiApproved: Bool
    public let commercialUse: Grant
    public let commercialNote: String?
    public let redistribution: Grant
    public let redistributionNote: String?
    /// Making derivatives: fine-tuning, adapters, quantizing.
    public let derivatives: Grant
    /// Merging with other models' weights (a derivative too, but some licences mention it).
    public let merging: Grant
    public let derivativesNote: String?
    /// Attribution or naming duties a distributor has (each one sentence).
    public let attribution: [String]
    /// A required name prefix for derivative models ("Llama" for Llama 3.1+).
    public let derivativeNamePrefix: String?
    /// Monthly active users above which a separate licence from the vendor is needed.
    public let monthlyActiveUserLimit: Int?
    /// The acceptable-use / prohibited-use policy that binds every user, if any.
    public let acceptableUsePolicyURL: String?
    /// Derivatives must be released under the same licence (or must carry the same use restrictions).
    public let shareAlike: Bool
    public let shareAlikeNote: String?
    /// What besides weights the licensor publishes, and whether the licence is "open" in OSI's sense.
    public let openness: String
    /// Where the licence text is.
    public let sourceURL: String
    /// Where the text leaves room for interpretation, or where one name covers several texts.
    public let ambiguity: String?
    /// The notice line a redistributor must ship, if the licence prescribes one.
    public let requiredNotice: String?

    public var isUnknown: Bool { id == LicenseCatalog.unknownID }
}

/// The licence catalogue. Terms are summarised from the licence texts at `sourceURL`
/// (read 2024–2025); where a summary simplifies, `ambiguity` says so.
public enum LicenseCatalog {
    public static let unknownID = "unknown"

    public static let all: [LicenseTerms] = [
        LicenseTerms(
            id: "apache-2.0", name: "Apache License 2.0", spdx: "Apache-2.0",
            aliases: ["apache 2.0", "apache2", "apache-2", "apache license 2.0", "apache license, version 2.0", "al2"],
            osiApproved: true,
            commercialUse: .yes, commercialNote: nil,
            redistribution: .yes, redistributionNote: "Ship a copy of the licence and any NOTICE file; say which files you changed.",
            derivatives: .yes, merging: .yes, derivativesNote: "Derivatives may use any licence for your own changes; the original's notices stay.",
            attribution: ["Keep the copyright, patent, trademark and attribution notices and the NOTICE file, if the model ships one.",
                          "Modified files must carry a prominent notice that you changed them."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "OSI-approved open-source licence; whether training code and data are published depends on the model, not the licence.",
            sourceURL: "https://www.apache.org/licenses/LICENSE-2.0",
            ambiguity: nil,
            requiredNotice: "Licensed under the Apache License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0)."),
        LicenseTerms(
            id: "mit", name: "MIT License", spdx: "MIT",
            aliases: ["mit license", "expat"],
            osiApproved: true,
            commercialUse: .yes, commercialNote: nil,
            redistribution: .yes, redistributionNote: "Include the copyright notice and the permission notice.",
            derivatives: .yes, merging: .yes, derivativesNote: nil,
            attribution: ["Include the copyright notice and the MIT permission notice in all copies or substantial portions."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "OSI-approved open-source licence.",
            sourceURL: "https://opensource.org/license/mit",
            ambiguity: nil,
            requiredNotice: "Licensed under the MIT License; the copyright notice and permission notice are included."),
        LicenseTerms(
            id: "bsd-3-clause", name: "BSD 3-Clause License", spdx: "BSD-3-Clause",
            aliases: ["bsd-3", "bsd 3-clause", "new bsd", "bsd3"],
            osiApproved: true,
            commercialUse: .yes, commercialNote: nil,
            redistribution: .yes, redistributionNote: "Keep the copyright notice, conditions and disclaimer.",
            derivatives: .yes, merging: .yes, derivativesNote: "The licensor's name may not be used to endorse derivatives without permission.",
            attribution: ["Reproduce the copyright notice, the list of conditions and the disclaimer in documentation shipped with the model."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "OSI-approved open-source licence.",
            sourceURL: "https://opensource.org/license/bsd-3-clause",
            ambiguity: nil, requiredNotice: nil),
        LicenseTerms(
            id: "cc-by-4.0", name: "Creative Commons Attribution 4.0", spdx: "CC-BY-4.0",
            aliases: ["cc by 4.0", "cc-by", "creative commons attribution 4.0"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: nil,
            redistribution: .yes, redistributionNote: "With attribution, a link to the licence, and an indication of changes.",
            derivatives: .yes, merging: .yes, derivativesNote: nil,
            attribution: ["Credit the creator, link the licence (https://creativecommons.org/licenses/by/4.0/) and say whether you changed the model."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Free-culture licence (not written for software; fine for weights and data).",
            sourceURL: "https://creativecommons.org/licenses/by/4.0/legalcode",
            ambiguity: "CC licences were written for creative works; whether model weights are copyrightable (and so licensable this way) is unsettled.",
            requiredNotice: nil),
        LicenseTerms(
            id: "cc-by-sa-4.0", name: "Creative Commons Attribution-ShareAlike 4.0", spdx: "CC-BY-SA-4.0",
            aliases: ["cc by-sa 4.0", "cc-by-sa"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: nil,
            redistribution: .yes, redistributionNote: "With attribution; adapted versions under CC BY-SA 4.0 or a compatible licence.",
            derivatives: .yes, merging: .conditional, derivativesNote: "Adaptations (fine-tunes, merges) you share must be licensed CC BY-SA 4.0 or compatible; a merge with weights under an incompatible licence cannot be shared.",
            attribution: ["Credit the creator, link the licence (https://creativecommons.org/licenses/by-sa/4.0/) and say whether you changed the model."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: true, shareAlikeNote: "Shared adaptations must use the same (or a compatible) licence.",
            openness: "Free-culture copyleft licence.",
            sourceURL: "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
            ambiguity: "Whether a fine-tune is an 'adapted material' and weights are copyrightable at all is unsettled.",
            requiredNotice: nil),
        LicenseTerms(
            id: "cc-by-nc-4.0", name: "Creative Commons Attribution-NonCommercial 4.0", spdx: "CC-BY-NC-4.0",
            aliases: ["cc by-nc 4.0", "cc-by-nc"],
            osiApproved: false,
            commercialUse: .no, commercialNote: "Only for purposes not primarily intended for commercial advantage or monetary compensation.",
            redistribution: .conditional, redistributionNote: "Non-commercially only, with attribution.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Adaptations allowed, and may be shared, for non-commercial purposes only.",
            attribution: ["Credit the creator, link the licence (https://creativecommons.org/licenses/by-nc/4.0/) and say whether you changed the model."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Non-commercial licence: not open source.",
            sourceURL: "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
            ambiguity: "Internal use inside a company can be commercial; 'primarily intended for commercial advantage' is judged case by case.",
            requiredNotice: nil),
        LicenseTerms(
            id: "openrail", name: "OpenRAIL-M (BigScience / CreativeML Open RAIL-M)", spdx: "OpenRAIL",
            aliases: ["openrail-m", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0", "open rail"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: "Allowed, subject to the use restrictions in the licence's attachment.",
            redistribution: .conditional, redistributionNote: "Pass on the use restrictions as enforceable terms and give recipients a copy of the licence.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Derivatives allowed; they must carry the same use restrictions (the rest of the licence may differ).",
            attribution: ["Give recipients a copy of the licence.", "Modified files must carry a prominent notice that you changed them.",
                          "Keep copyright, patent, trademark and attribution notices."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil,
            acceptableUsePolicyURL: "https://huggingface.co/spaces/CompVis/stable-diffusion-license (Attachment A: use restrictions)",
            shareAlike: true, shareAlikeNote: "Only the use restrictions are share-alike.",
            openness: "Responsible-AI licence: open access with use-based restrictions; not OSI open source.",
            sourceURL: "https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license",
            ambiguity: "'OpenRAIL' names a family (BigScience OpenRAIL-M, CreativeML OpenRAIL-M, BLOOM RAIL); the restrictions lists differ slightly. Check the model's own text.",
            requiredNotice: nil),
        LicenseTerms(
            id: "openrail++", name: "CreativeML Open RAIL++-M", spdx: nil,
            aliases: ["openrail++-m", "creativeml-openrail++-m", "open rail++"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: "Allowed, subject to the use restrictions in Attachment A.",
            redistribution: .conditional, redistributionNote: "Pass on the use restrictions as enforceable terms and give recipients a copy of the licence.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Derivatives allowed; they must carry the same use restrictions.",
            attribution: ["Give recipients a copy of the licence.", "Modified files must carry a prominent notice that you changed them."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil,
            acceptableUsePolicyURL: "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md (Attachment A: use restrictions)",
            shareAlike: true, shareAlikeNote: "Only the use restrictions are share-alike.",
            openness: "Responsible-AI licence (used by Stable Diffusion XL); not OSI open source.",
            sourceURL: "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
            ambiguity: "Close to OpenRAIL-M; the '++' revision mainly clarifies outputs and derivatives.",
            requiredNotice: nil),
        llama(id: "llama2", name: "Llama 2 Community License", aliases: ["llama-2", "llama 2", "llama2-community", "llama-2-community-license"],
              notice: "Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, Inc. All Rights Reserved.",
              attribution: [], prefix: nil,
              extraNote: "Llama 2 and its outputs may not be used to improve any other large language model (other than Llama 2 and its derivatives).",
              source: "https://ai.meta.com/llama/license/", aup: "https://ai.meta.com/llama/use-policy/",
              ambiguity: "The 700M-MAU count is taken on Llama 2's release date (July 18, 2023), for the licensee and its affiliates."),
        llama(id: "llama3", name: "Meta Llama 3 Community License", aliases: ["llama-3", "llama 3", "llama3-community", "llama-3-community-license", "meta-llama-3-community-license"],
              notice: "Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved.",
              attribution: ["Display \"Built with Meta Llama 3\" prominently on a related website, user interface, blog post, about page or product documentation."],
              prefix: "Llama 3",
              extraNote: "Llama 3 materials and outputs may not be used to improve any other large language model (other than Llama 3 derivatives).",
              source: "https://llama.meta.com/llama3/license/", aup: "https://llama.meta.com/llama3/use-policy/",
              ambiguity: "The 700M-MAU count is taken on the release date (April 18, 2024)."),
        llama(id: "llama3.1", name: "Llama 3.1 Community License", aliases: ["llama-3.1", "llama 3.1", "llama3-1", "llama-3-1", "llama3.1-community", "llama-3.1-community-license"],
              notice: "Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved.",
              attribution: ["Display \"Built with Llama\" prominently on a related website, user interface, blog post, about page or product documentation."],
              prefix: "Llama", extraNote: nil,
              source: "https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/LICENSE", aup: "https://llama.meta.com/llama3_1/use-policy",
              ambiguity: "The 700M-MAU count is taken on the release date (July 23, 2024)."),
        llama(id: "llama3.2", name: "Llama 3.2 Community License", aliases: ["llama-3.2", "llama 3.2", "llama3-2", "llama-3-2", "llama3.2-community", "llama-3.2-community", "llama-3.2-community-license"],
              notice: "Llama 3.2 is licensed under the Llama 3.2 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved.",
              attribution: ["Display \"Built with Llama\" prominently on a related website, user interface, blog post, about page or product documentation."],
              prefix: "Llama",
              extraNote: "The acceptable-use policy withholds the licence for the multimodal (vision) Llama 3.2 models from individuals domiciled in, and companies with their principal place of business in, the EU (end users of products built with them are not affected).",
              source: "https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/LICENSE", aup: "https://www.llama.com/llama3_2/use-policy",
              ambiguity: "The EU clause applies to the vision models only; text-only 1B/3B models are not covered by it."),
        llama(id: "llama3.3", name: "Llama 3.3 Community License", aliases: ["llama-3.3", "llama 3.3", "llama3-3", "llama-3-3", "llama3.3-community", "llama-3.3-community-license"],
              notice: "Llama 3.3 is licensed under the Llama 3.3 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved.",
              attribution: ["Display \"Built with Llama\" prominently on a related website, user interface, blog post, about page or product documentation."],
              prefix: "Llama", extraNote: nil,
              source: "https://www.llama.com/llama3_3/license/", aup: "https://www.llama.com/llama3_3/use-policy",
              ambiguity: "The 700M-MAU count is taken on the release date (December 6, 2024)."),
        llama(id: "llama4", name: "Llama 4 Community License", aliases: ["llama-4", "llama 4", "llama4-community", "llama-4-community-license"],
              notice: "Llama 4 is licensed under the Llama 4 Community License, Copyright © Meta Platforms, Inc. All Rights Reserved.",
              attribution: ["Display \"Built with Llama\" prominently on a related website, user interface, blog post, about page or product documentation."],
              prefix: "Llama",
              extraNote: "Llama 4 models are multimodal; the acceptable-use policy withholds the licence for multimodal models from individuals domiciled in, and companies with their principal place of business in, the EU.",
              source: "https://www.llama.com/llama4/license/", aup: "https://www.llama.com/llama4/use-policy/",
              ambiguity: "Check the current use policy for the EU clause's exact scope; it has changed between Llama versions."),
        LicenseTerms(
            id: "gemma", name: "Gemma Terms of Use", spdx: nil,
            aliases: ["gemma-terms-of-use", "gemma terms of use", "gemma-license", "gemma-terms"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: "Allowed, subject to the Gemma Prohibited Use Policy; Google may restrict use (remotely or otherwise) that it believes violates the terms.",
            redistribution: .conditional, redistributionNote: "Pass on the use restrictions (Section 3.2 and the Prohibited Use Policy) as enforceable terms, give recipients a copy of the terms, and ship the notice.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Model derivatives (fine-tunes, merges, and models trained on Gemma's outputs or by distillation) are covered by the same terms and restrictions.",
            attribution: ["Ship the notice text \"Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\" in a NOTICE file with the model.",
                          "Modified files must carry a prominent notice that you changed them."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil,
            acceptableUsePolicyURL: "https://ai.google.dev/gemma/prohibited_use_policy",
            shareAlike: true, shareAlikeNote: "The use restrictions travel with every copy and derivative.",
            openness: "Open weights under custom terms; not OSI open source. Training code and data are not published.",
            sourceURL: "https://ai.google.dev/gemma/terms",
            ambiguity: "Outputs are not claimed by Google, but models trained on Gemma outputs count as 'Model Derivatives'. The prohibited-use policy may be updated by Google.",
            requiredNotice: "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms"),
        LicenseTerms(
            id: "qwen", name: "Qwen License Agreement (Tongyi Qianwen License)", spdx: nil,
            aliases: ["tongyi-qianwen", "tongyi qianwen license", "qwen-license", "qwen license agreement"],
            osiApproved: false,
            commercialUse: .conditional, commercialNote: "Allowed; a product or service with more than 100 million monthly active users needs a licence from Alibaba Cloud.",
            redistribution: .conditional, redistributionNote: "Give recipients a copy of the agreement and keep the notice.",
            derivatives: .yes, merging: .yes, derivativesNote: "A distributed model created, trained, fine-tuned or improved with the materials or their outputs must display \"Built with Qwen\" or \"Improved using Qwen\".",
            attribution: ["Display \"Built with Qwen\" or \"Improved using Qwen\" in the product documentation of a distributed model built with it.",
                          "Keep the notice: \"Qwen is licensed under the Qwen LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved.\""],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: 100_000_000, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Open weights under custom terms; not OSI open source. Many Qwen 2.5 and all Qwen 3 models use Apache-2.0 instead.",
            sourceURL: "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
            ambiguity: "Qwen models ship under several licences (Apache-2.0, this agreement, the research licence); check the model card of the exact model.",
            requiredNotice: "Qwen is licensed under the Qwen LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."),
        LicenseTerms(
            id: "qwen-research", name: "Qwen Research License Agreement", spdx: nil,
            aliases: ["qwen-research-license", "tongyi-qianwen-research", "qwen research license"],
            osiApproved: false,
            commercialUse: .no, commercialNote: "Research and evaluation only; commercial use needs a separate licence from Alibaba Cloud.",
            redistribution: .conditional, redistributionNote: "Non-commercially, with a copy of the agreement.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Derivatives for non-commercial purposes; \"Built with Qwen\" or \"Improved using Qwen\" on distributed ones.",
            attribution: ["Display \"Built with Qwen\" or \"Improved using Qwen\" in the product documentation of a distributed model built with it.",
                          "Keep the notice: \"Qwen is licensed under the Qwen RESEARCH LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved.\""],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Open weights, non-commercial; not open source.",
            sourceURL: "https://huggingface.co/Qwen/Qwen2.5-3B/blob/main/LICENSE",
            ambiguity: nil,
            requiredNotice: "Qwen is licensed under the Qwen RESEARCH LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."),
        LicenseTerms(
            id: "deepseek", name: "DeepSeek License Agreement", spdx: nil,
            aliases: ["deepseek-license", "deepseek license agreement", "deepseek-model-license"],
            osiApproved: false,
            commercialUse: .yes, commercialNote: "Allowed, subject to the use-based restrictions in Attachment A.",
            redistribution: .conditional, redistributionNote: "Pass on the use restrictions as enforceable terms and give recipients a copy of the licence.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Derivatives allowed; they must carry the same use restrictions.",
            attribution: ["Give recipients a copy of the licence.", "Modified files must carry a prominent notice that you changed them.",
                          "Keep copyright, patent, trademark and attribution notices."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil,
            acceptableUsePolicyURL: "https://github.com/deepseek-ai/DeepSeek-LLM/blob/main/LICENSE-MODEL (Attachment A: use restrictions)",
            shareAlike: true, shareAlikeNote: "Only the use restrictions are share-alike (OpenRAIL-style).",
            openness: "Open weights under an OpenRAIL-style licence; not OSI open source.",
            sourceURL: "https://github.com/deepseek-ai/DeepSeek-LLM/blob/main/LICENSE-MODEL",
            ambiguity: "DeepSeek-R1 and later V3 releases are MIT-licensed instead; only older models (LLM, Coder, V2, early V3) use this agreement.",
            requiredNotice: nil),
        LicenseTerms(
            id: "mistral-research", name: "Mistral AI Research License (MRL) / Mistral AI Non-Production License (MNPL)", spdx: nil,
            aliases: ["mrl", "mnpl", "mistral-research-license", "mistral ai research license", "mistral-non-production", "mistral-ai-non-production-license", "mrl-0.1", "mnpl-0.1"],
            osiApproved: false,
            commercialUse: .no, commercialNote: "Research (MRL) or non-production testing (MNPL) only; production or commercial use needs a commercial licence from Mistral AI.",
            redistribution: .conditional, redistributionNote: "Only under the same licence, with a copy of it, for non-commercial purposes.",
            derivatives: .conditional, merging: .conditional, derivativesNote: "Derivatives allowed for research / non-production use and under the same terms.",
            attribution: ["Ship a copy of the licence and the notice \"Licensed by Mistral AI under the Mistral AI Research License\" (or Non-Production License) with the model and derivatives."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: true, shareAlikeNote: "Derivatives are distributed under the same licence.",
            openness: "Open weights for research only; not open source.",
            sourceURL: "https://mistral.ai/licenses/MRL-0.1.md",
            ambiguity: "Two texts share this entry: MRL-0.1 (research) and MNPL-0.1 (non-production, e.g. Codestral, https://mistral.ai/licenses/MNPL-0.1.md); both forbid commercial use. Many Mistral models are Apache-2.0 instead.",
            requiredNotice: "Licensed by Mistral AI under the Mistral AI Research License."),
        LicenseTerms(
            id: "falcon", name: "TII Falcon License (Falcon LLM License)", spdx: nil,
            aliases: ["falcon-llm-license", "tii-falcon-license", "falcon-license", "falcon-180b-tii-license-1.0", "tii falcon license 2.0"],
            osiApproved: false,
            commercialUse: .conditional, commercialNote: "Allowed under the Apache-2.0-based TII Falcon License 2.0 with its acceptable-use policy; the older Falcon 180B licence needed a separate licence for hosting use (offering the model as a service).",
            redistribution: .conditional, redistributionNote: "Give recipients the licence and the acceptable-use policy; keep notices.",
            derivatives: .yes, merging: .yes, derivativesNote: "Derivatives must follow the acceptable-use policy.",
            attribution: ["Keep TII's copyright and attribution notices and give recipients a copy of the licence.",
                          "Modified files must carry a prominent notice that you changed them."],
            derivativeNamePrefix: nil, monthlyActiveUserLimit: nil,
            acceptableUsePolicyURL: "https://falconllm-staging.tii.ae/falcon-2-acceptable-use-policy.html",
            shareAlike: false, shareAlikeNote: nil,
            openness: "Open weights; Falcon-7B/40B are Apache-2.0, later Falcon models use the TII licence with an AUP.",
            sourceURL: "https://falconllm.tii.ae/falcon-terms-and-conditions.html",
            ambiguity: "Several TII texts share this name (Falcon 180B TII Licence 1.0, TII Falcon License 2.0); hosting-use terms differ between them. Check the model's own text.",
            requiredNotice: nil),
        LicenseTerms(
            id: unknownID, name: "Unknown licence", spdx: nil,
            aliases: ["other", "none", "unlicensed", "proprietary", ""],
            osiApproved: false,
            commercialUse: .no, commercialNote: "No licence is known: assume no rights until you find the licence text.",
            redistribution: .no, redistributionNote: "Without a licence, copying the weights to others is not permitted.",
            derivatives: .no, merging: .no, derivativesNote: "Without a licence, no derivatives.",
            attribution: [], derivativeNamePrefix: nil, monthlyActiveUserLimit: nil, acceptableUsePolicyURL: nil,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Unknown.",
            sourceURL: "",
            ambiguity: "Find the licence on the model card and record it with `steward models add … --license ID`.",
            requiredNotice: nil),
    ]

    /// The Llama community licences share their structure; only the version details differ.
    private static func llama(id: String, name: String, aliases: [String], notice: String, attribution: [String],
                              prefix: String?, extraNote: String?, source: String, aup: String, ambiguity: String) -> LicenseTerms {
        var derivativesNote = "Derivatives allowed under the same agreement"
        if let prefix { derivativesNote += "; a distributed model built with it must have a name beginning with \"\(prefix)\"" }
        derivativesNote += "."
        if let extraNote { derivativesNote += " " + extraNote }
        return LicenseTerms(
            id: id, name: name, spdx: nil, aliases: aliases, osiApproved: false,
            commercialUse: .conditional,
            commercialNote: "Allowed unless the licensee's products had more than 700 million monthly active users on the release date; then a licence from Meta is needed (granted at Meta's discretion).",
            redistribution: .conditional,
            redistributionNote: "Give recipients a copy of the agreement, ship the \"Notice\" text file, and follow the acceptable-use policy.",
            derivatives: .yes, merging: .yes, derivativesNote: derivativesNote,
            attribution: attribution + ["Ship a \"Notice\" text file containing: \(notice)"],
            derivativeNamePrefix: prefix, monthlyActiveUserLimit: 700_000_000, acceptableUsePolicyURL: aup,
            shareAlike: false, shareAlikeNote: nil,
            openness: "Open weights under a custom community licence; not OSI open source. Training data is not published.",
            sourceURL: source, ambiguity: ambiguity, requiredNotice: notice)
    }

    private static let byKey: [String: String] = {
        var map: [String: String] = [:]
        for t in all {
            map[key(t.id)] = t.id
            if let s = t.spdx { map[key(s)] = t.id }
            for a in t.aliases { map[key(a)] = t.id }
        }
        return map
    }()

    /// Lowercased, with spaces and underscores as hyphens, so "Apache 2.0" and "apache_2.0" meet.
    private static func key(_ s: String) -> String {
        s.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            .replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: " ", with: "-")
    }

    /// The catalogue id for a licence as written anywhere (SPDX id, GGUF `general.license`, model
    /// card front matter, user input), or nil when it is not in the catalogue.
    public static func normalize(_ raw: String) -> String? {
        let k = key(raw)
        if let id = byKey[k] { return id }
        // Hugging Face model cards write e.g. "llama3.2" but also "llama-3.2-community-license-agreement".
        for suffix in ["-license-agreement", "-community-license-agreement", "-license", "-agreement"] where k.hasSuffix(suffix) {
            if let id = byKey[String(k.dropLast(suffix.count))] { return id }
        }
        return nil
    }

    public static func terms(id: String) -> LicenseTerms? { all.first { $0.id == id } }

    /// The terms for a licence as written anywhere; the "unknown" entry when it is not catalogued.
    public static func lookup(_ raw: String?) -> LicenseTerms {
        guard let raw, let id = normalize(raw), let t = terms(id: id) else { return unknown }
        return t
    }

    public static var unknown: LicenseTerms { all.first { $0.id == unknownID }! }

    public static var ids: [String] { all.map(\.id) }

    /// 700000000 → "700,000,000" (Foundation's number formatting differs across platforms).
    static func grouped(_ n: Int) -> String {
        var digits = Array(String(n))
        var out: [Character] = []
        while digits.count > 3 { out = [","] + digits.suffix(3) + out; digits.removeLast(3) }
        return String(digits + out)
    }
}

extension LicenseTerms {
    /// The terms in plain words, one line each, for `steward license show`.
    public var plainWords: String {
        var s = "\(name) (\(id))\n"
        if let spdx { s += "  SPDX id:           \(spdx)\n" }
        s += "  Open source (OSI): \(osiApproved ? "yes" : "no")\n"
        s += "  Commercial use:    \(commercialUse)\(commercialNote.map { " — \($0)" } ?? "")\n"
        s += "  Redistribution:    \(redistribution)\(redistributionNote.map { " — \($0)" } ?? "")\n"
        s += "  Fine-tuning etc.:  \(derivatives)\(derivativesNote.map { " — \($0)" } ?? "")\n"
        s += "  Merging:           \(merging)\n"
        if let n = monthlyActiveUserLimit {
            s += "  User threshold:    above \(LicenseCatalog.grouped(n)) monthly active users a separate licence is needed\n"
        }
        if let prefix = derivativeNamePrefix { s += "  Derivative names:  must begin with \"\(prefix)\"\n" }
        if let aup = acceptableUsePolicyURL { s += "  Acceptable use:    policy attached — \(aup)\n" }
        s += "  Share-alike:       \(shareAlike ? "yes" + (shareAlikeNote.map { " — \($0)" } ?? "") : "no")\n"
        for a in attribution { s += "  Duty:              \(a)\n" }
        s += "  Openness:          \(openness)\n"
        if !sourceURL.isEmpty { s += "  Licence text:      \(sourceURL)\n" }
        if let ambiguity { s += "  Note:              \(ambiguity)\n" }
        s += "  (A summary to help decisions, not legal advice; the licence text governs.)\n"
        return s
    }
}
